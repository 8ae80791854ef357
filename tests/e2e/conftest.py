from e2e_support import iris_model, server

__all__ = ["iris_model", "server"]
