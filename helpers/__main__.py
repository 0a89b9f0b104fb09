"""``python -m helpers <command>``: the same command line as ``course-kit`` (see :mod:`helpers.cli`)."""

import sys

if __name__ == "__main__" and sys.argv[1:] == ["doctor"]:
    # Before the command line loads every library, so that one which does not import is reported, not raised.
    from helpers.course.doctor import diagnose

    print(diagnose())
    sys.exit(0)

from helpers.cli import main

if __name__ == "__main__":
    sys.exit(main())
