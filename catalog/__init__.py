"""finprint: catalogue individual fish from survey photos by their skin pattern."""

__version__ = "0.1.0"
