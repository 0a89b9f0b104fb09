"""``python -m helpers <command>``: the same command line as ``course-kit`` (see :mod:`helpers.cli`)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
