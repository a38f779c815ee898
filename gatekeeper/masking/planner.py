"""``Masking``: the entry point the protocol adapters use. Built once per configuration, it
turns a decision's ``mask`` items into a :class:`~gatekeeper.masking.plan.Plan`, caching plans
by content so that a policy revision's rules are compiled once, not per request."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from gatekeeper import plugins
from gatekeeper.config.values import MaskingConfig
from gatekeeper.masking.plan import Plan
from gatekeeper.masking.registry import MaskingError, Registry
from gatekeeper.masking.rules import compile_rules

__all__ = ["Masking"]


class Masking:
    """``Masking(config.masking)``, then ``plan(decision.mask, direction)`` per request and
    ``plan.apply(key, value, headers)`` per record. ``load`` and ``available`` default to the
    entry-point loader (tests and plugin authors pass a table).

    Build a new one when the config is reloaded (the hash key may have changed). Its caches are
    not locked: use it from one thread (the reactor's); a Plan may be applied from any thread."""

    def __init__(
        self,
        config: MaskingConfig,
        *,
        load: Callable[[str, str], Any] = plugins.load,
        available: Callable[[str], list[str]] = plugins.available,
    ) -> None:
        self.config = config
        self._registry = Registry(config.hash_key, load=load, available=available,
                                  max_instances=4 * config.plan_cache_entries)
        self._plans: OrderedDict[tuple[str, str], Plan | MaskingError] = OrderedDict()

    def plan(self, items: Sequence[Any], direction: str) -> Plan:
        """The compiled rules for ``direction`` (``produce`` or ``consume``: the default
        ``on_error``), or MaskingError naming the bad rule, masker, detector, path or option."""
        try:
            key = (direction, json.dumps(items, sort_keys=True, separators=(",", ":")))
        except (TypeError, ValueError) as e:
            raise MaskingError(f"mask: the rules are not JSON: {e}") from None
        cached = self._plans.get(key)
        if cached is None:
            try:
                cached = Plan(compile_rules(items, direction, self._registry))
            except MaskingError as e:
                cached = e  # a broken policy is not compiled again for every request
            self._plans[key] = cached
            if len(self._plans) > self.config.plan_cache_entries:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        if isinstance(cached, MaskingError):
            raise MaskingError(str(cached))
        return cached
