"""Print the runtime requirements of pyproject.toml, one a line, for `pip install -r`.

Used by the Dockerfile to install dependencies in a layer of their own, before the code is
copied, so that editing the code does not reinstall them. Extras named with `--extras a,b`
are added; development extras are never included unless named.
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from pathlib import Path


def requirements(pyproject: dict[str, object], extras: list[str]) -> list[str]:
    """The `project.dependencies` list plus the named optional dependency groups."""
    project = pyproject.get("project")
    if not isinstance(project, dict):
        raise ValueError("pyproject.toml has no [project] table")
    wanted = list(project.get("dependencies", []))
    optional = project.get("optional-dependencies", {})
    for extra in extras:
        if extra not in optional:
            raise ValueError(f"pyproject.toml: unknown extra {extra!r}")
        wanted.extend(optional[extra])
    return list(dict.fromkeys(wanted))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pyproject", type=Path)
    parser.add_argument("--extras", default="", help="comma-separated extras to include")
    args = parser.parse_args(argv)
    extras = [e.strip() for e in args.extras.split(",") if e.strip()]
    try:
        data = tomllib.loads(args.pyproject.read_text(encoding="utf-8"))
        lines = requirements(data, extras)
    except (OSError, ValueError) as e:
        print(f"{args.pyproject}: {e}", file=sys.stderr)
        return 1
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
