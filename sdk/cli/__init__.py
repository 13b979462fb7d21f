"""The ``shelfwise`` command line (the same nouns and verbs as the Python API)."""

from .main import main

__all__ = ["main"]
