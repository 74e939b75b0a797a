"""The `finprint` command line: parse, call one library function, print what it returns.

Commands live in one module per audience: the night (night), deciding (decide), asking (ask), the
model (model) and upkeep (upkeep); each registers on the one app in common. Importing this package
registers them all, in the order `finprint --help` shows their panels.
"""

# isort: off
# Imported to register their commands, in the order of `finprint --help`'s panels.
from catalog.cli import night  # noqa: F401
from catalog.cli import ask  # noqa: F401
from catalog.cli import decide  # noqa: F401
from catalog.cli import model  # noqa: F401
from catalog.cli import upkeep  # noqa: F401

# isort: on
from catalog.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_NOT_BETTER,
    EXIT_PHOTO_ERRORS,
    EXIT_USAGE,
    EXIT_USER_ERROR,
    app,
    main,
)

__all__ = [
    "EXIT_INTERRUPTED",
    "EXIT_NOT_BETTER",
    "EXIT_PHOTO_ERRORS",
    "EXIT_USAGE",
    "EXIT_USER_ERROR",
    "app",
    "main",
]
