"""`python -m monitor` runs the command line."""

from monitor.cli import main

# Guarded: parse worker processes import the main module again, and must not run the CLI.
if __name__ == "__main__":
    main()
