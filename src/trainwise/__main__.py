"""``python -m trainwise``: the same command as ``trainwise`` (useful when the venv's bin/ is not on PATH)."""

import sys

from trainwise.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
