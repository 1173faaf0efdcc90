"""The `monitor` console script's entry point, which imports the command line only when run.

Parse worker processes are spawned, and a spawned process runs its parent's main module again
(`multiprocessing.spawn`), here the console script. Were the script to import `monitor.cli` at
its top, every worker would first import the whole command line (spaCy, SQLAlchemy, the
alerts) before it parses a feed: about 1.3 s of CPU each, measured.
"""

from __future__ import annotations


def main() -> None:
    """Run the command line (`monitor.cli.main`)."""
    from monitor.cli import main as run_cli

    run_cli()
