"""Build of the optional compiled part: story shingles hashed in C (`monitor._shinglehash`).

Everything else is declared in pyproject.toml. The extension is optional: without a C
compiler the install goes on and the monitor uses its Python path (`monitor.shingles`).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "monitor._shinglehash",
            sources=["monitor/_shinglehash.c"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
