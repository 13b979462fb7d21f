"""``python -m shelfwise.cli``: the same as the ``shelfwise`` command."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
