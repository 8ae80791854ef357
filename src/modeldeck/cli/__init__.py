"""`modeldeck` command line: the server, the model server, and the API client commands."""

from __future__ import annotations

import sys

from modeldeck.cli.main import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
