"""The OPA version Gatekeeper is tested against, pinned in one place.

The harness builds exactly this version (``harness/deps.py``) and ``gatekeeper policy`` looks
for that build in the cache when no other ``opa`` is given (``gatekeeper.policy.authoring``).
"""

__all__ = ["OPA_VERSION"]

OPA_VERSION = "v1.22.2"
