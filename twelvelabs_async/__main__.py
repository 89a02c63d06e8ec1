"""``python -m twelvelabs_async``: the command line (see ``--help``)."""

from __future__ import annotations

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
