"""A kafka-python OAUTHBEARER token provider reading the caller's bearer token from a file
(re-read at every login, so a refreshed token file is picked up), for ``audit replay --records``."""

from __future__ import annotations

from pathlib import Path

from kafka.net.sasl.oauth import AbstractTokenProvider

__all__ = ["FileTokenProvider"]


class FileTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    def __init__(self, path: str | Path) -> None:
        super().__init__()
        self.path = Path(path)

    def token(self) -> str:
        text = self.path.read_text().strip()
        return text[7:].strip() if text.lower().startswith("bearer ") else text
