"""pytest-dbsec: Databricks security compliance as a pytest suite."""

__version__ = "0.1.0"
