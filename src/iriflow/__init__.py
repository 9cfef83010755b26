"""iriflow: the library behind the workflow (data, models, IRIs, judgments,
analysis). Rule scripts in scripts/ are thin wrappers around it."""

__version__ = "0.1.0"
