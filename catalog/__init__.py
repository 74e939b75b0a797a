"""finprint: catalogue individual fish from survey photos by their skin pattern."""

import logging

__version__ = "0.1.0"

# What an operator should know that is not an error (a graph rebuilt, a settings change, a run's
# counts) goes to this logger; the CLI's --log FILE is one of its handlers. A library says nothing
# unless its user asks: without this, Python would print warnings to stderr by itself.
logging.getLogger("finprint").addHandler(logging.NullHandler())
