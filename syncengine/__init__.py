"""syncengine: pull CRMs into a SQL mirror and keep them in step."""

__version__ = "0.1.0"
