"""Gatekeeper: a Layer-7 policy gateway for Apache Kafka."""

__version__ = "0.1.0"

__all__ = ["__version__"]
