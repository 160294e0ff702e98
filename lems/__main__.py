"""``python -m lems``: the ``lems`` command line (see :mod:`lems.cli`)."""

from __future__ import annotations

from lems.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
