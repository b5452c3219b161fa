"""The one base class of the errors a user can fix.

Every error the project raises about its input (an option, a space file, a dataset,
an experiment directory, a table) derives from `UserError`, with a message that
says what was wrong, the offending value and what to do. The command line prints
such an error as one paragraph and exits with status 2; any other exception is a
bug in the tool, and keeps its traceback.
"""

from __future__ import annotations


class UserError(ValueError):
    """Bad input that the user can fix; the message says what was wrong and what to do.

    A ValueError, so code that catches ValueError (as many callers of a
    validating function do) keeps working.
    """
