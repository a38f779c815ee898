"""For a masker or detector author's tests: Gatekeeper's real rules engine with plugin classes
registered as if installed, without installing a distribution.

    from gatekeeper.testing.masking import masking_with

    plan = masking_with(maskers={"initials": Initials}).plan(
        [{"field": "$.name", "masker": "initials"}], "produce")
    assert plan.apply(None, b'{"name": "Ada Lovelace"}', []).value == b'{"name":"A. L."}'
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gatekeeper import plugins
from gatekeeper.config.values import MaskingConfig
from gatekeeper.masking import Masking

__all__ = ["masking_with"]

TEST_HASH_KEY = b"gatekeeper.testing hash key, not a secret"


def masking_with(
    maskers: Mapping[str, type[Any]] | None = None,
    detectors: Mapping[str, type[Any]] | None = None,
    *,
    hash_key: bytes | None = TEST_HASH_KEY,
) -> Masking:
    """A ``Masking`` that finds ``maskers`` and ``detectors`` (name -> class) besides everything
    installed; ``hash_key`` is what ``masking.hash_key_file`` would hold (None: none configured)."""
    extra = {plugins.MASKERS: dict(maskers or {}), plugins.DETECTORS: dict(detectors or {})}

    def load(group: str, name: str) -> Any:
        table = extra.get(group, {})
        return table[name] if name in table else plugins.load(group, name)

    def available(group: str) -> list[str]:
        return sorted(set(plugins.available(group)) | set(extra.get(group, {})))

    return Masking(MaskingConfig(hash_key=hash_key), load=load, available=available)
