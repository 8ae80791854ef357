"""modeldeck: deploy trained models as HTTP endpoints."""

__version__ = "0.1.0"
