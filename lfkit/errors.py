"""The root of every error lfkit raises on purpose.

A ``LfkitError`` is a problem with the user's input, files or environment that lfkit
has diagnosed: the command line prints its message as one line on stderr and exits
with status 1 (set ``LFKIT_DEBUG=1`` for the traceback). Anything else that escapes is
a bug and surfaces with its traceback.

Each package defines its own subclasses next to the code that raises them
(``DataFileError`` in ``lfkit.io``, ``RegistryError`` in ``lfkit.registry``, ...), so
callers can catch one concept or all of lfkit's errors at once.
"""

from __future__ import annotations


class LfkitError(Exception):
    """A diagnosed problem: its message alone tells the user what to fix."""
