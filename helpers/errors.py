"""The one base class of every mistake a learner can make and fix (a wrong folder, a setting, the hardware).

The command line prints such an error as its message alone and exits with status 2;
anything else is a bug in the kit and keeps its traceback.
"""

from __future__ import annotations


class LearnerError(Exception):
    """A problem the learner can fix; the message says how."""
