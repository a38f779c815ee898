"""Gatekeeper: a Layer-7 policy gateway for Apache Kafka."""

from gatekeeper import compiled as _compiled

# Before any other module of the package is imported: an extension is used only if it was
# compiled from its source as it is now (gatekeeper/compiled.py).
_compiled.install()

__version__ = "0.1.0"

__all__ = ["__version__"]
