"""``python -m ewclab demo ...``: the same as the ``ewclab`` command."""

from ewclab.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
