"""`modeldeck` command line: the server, the model server, and the API client commands."""

from modeldeck.cli.main import main

__all__ = ["main"]
