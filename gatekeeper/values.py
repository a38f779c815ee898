"""Small value types shared across the package: a ``host:port`` pair and durations.

Nothing here imports from the rest of Gatekeeper, so any layer (config, identity, the Kafka
adapter, the proxy) may use these without pulling in another.
"""

from __future__ import annotations

import attrs

__all__ = ["HostPort", "parse_duration"]


def parse_duration(text: str) -> float:
    """``250ms`` / ``5s`` / ``2m`` / ``1h`` → seconds."""
    for suffix, scale in (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    raise ValueError(f"not a duration: {text!r}")


@attrs.frozen
class HostPort:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> HostPort:
        host, _, port = text.rpartition(":")
        return cls(host=host, port=int(port))

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"
