"""Build of the optional compiled parts: story shingles hashed in C (`monitor._shinglehash`)
and the matcher's word passes (`monitor._wordscan`).

Everything else is declared in pyproject.toml. The extensions are optional: without a C
compiler the install goes on and the monitor uses its Python paths (`monitor.shingles`,
`monitor.match`), which give the same results.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "monitor._shinglehash",
            sources=["monitor/_shinglehash.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
        Extension(
            "monitor._wordscan",
            sources=["monitor/_wordscan.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
    ]
)
