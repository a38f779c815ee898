"""Entry-point plugin loading: protocol adapters, maskers, detectors, notifiers and audit sinks.

Built-in plugins are entry points of the ``gatekeeper`` distribution like any third party's
(``setup.cfg``). ``BUILTINS`` repeats them (a test keeps the two equal) so that a checkout whose
installed metadata predates a built-in still finds it; an installed entry point of the same name
and target is the same plugin, and a third party's entry point can never replace a built-in.
"""

from __future__ import annotations

import importlib
from importlib.metadata import EntryPoint, entry_points
from typing import Any

__all__ = ["ADAPTERS", "AUDIT_SINKS", "BUILTINS", "DETECTORS", "MASKERS", "NOTIFIERS", "PluginError", "available", "load"]

ADAPTERS = "gatekeeper.adapters"
MASKERS = "gatekeeper.maskers"
DETECTORS = "gatekeeper.detectors"
NOTIFIERS = "gatekeeper.notifiers"
AUDIT_SINKS = "gatekeeper.audit_sinks"

BUILTINS: dict[str, dict[str, str]] = {
    ADAPTERS: {"kafka": "gatekeeper.kafka.adapter:KafkaAdapter"},
    MASKERS: {
        "drop": "gatekeeper.masking.maskers:Drop",
        "email": "gatekeeper.masking.maskers:Email",
        "hash": "gatekeeper.masking.maskers:Hash",
        "keep": "gatekeeper.masking.maskers:Keep",
        "last4": "gatekeeper.masking.maskers:Last4",
        "null": "gatekeeper.masking.maskers:Null",
        "redact": "gatekeeper.masking.maskers:Redact",
    },
    DETECTORS: {
        "aws_access_key_id": "gatekeeper.masking.detectors:AwsAccessKeyId",
        "credit_card": "gatekeeper.masking.detectors:CreditCard",
        "email": "gatekeeper.masking.detectors:Email",
        "iban": "gatekeeper.masking.detectors:Iban",
        "ipv4": "gatekeeper.masking.detectors:Ipv4",
        "jwt": "gatekeeper.masking.detectors:Jwt",
        "phone": "gatekeeper.masking.detectors:Phone",
        "private_key": "gatekeeper.masking.detectors:PrivateKey",
        "us_ssn": "gatekeeper.masking.detectors:UsSsn",
    },
    NOTIFIERS: {
        "log": "gatekeeper.approvals.notifiers:LogNotifier",
        "webhook": "gatekeeper.approvals.notifiers:WebhookNotifier",
    },
    AUDIT_SINKS: {
        "file": "gatekeeper.audit.file_sink:FileSink",
        "kafka": "gatekeeper.audit.kafka_sink:KafkaSink",
    },
}


class PluginError(Exception):
    """A configured plugin is not installed or does not load."""


def _installed(group: str) -> dict[str, list[EntryPoint]]:
    out: dict[str, list[EntryPoint]] = {}
    for ep in entry_points(group=group):
        if all(other.value != ep.value for other in out.get(ep.name, [])):
            out.setdefault(ep.name, []).append(ep)
    return out


def available(group: str) -> list[str]:
    return sorted(set(BUILTINS.get(group, {})) | set(_installed(group)))


def _origin(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{ep.value} from {dist.name}" if dist is not None else ep.value


def load(group: str, name: str) -> Any:
    """The object registered as ``name`` in entry-point ``group``."""
    builtin = BUILTINS.get(group, {}).get(name)
    found = _installed(group).get(name, [])
    others = [ep for ep in found if ep.value != builtin]
    if builtin is not None and others:
        raise PluginError(
            f"plugin {name!r} in {group!r} is built in and also registered by "
            f"{', '.join(_origin(ep) for ep in others)}; a built-in cannot be replaced: "
            "uninstall that distribution or register the plugin under another name"
        )
    if builtin is None and len(others) > 1:
        raise PluginError(
            f"plugin {name!r} in {group!r} is registered more than once "
            f"({', '.join(_origin(ep) for ep in others)}); uninstall all but one"
        )
    if builtin is None and not others:
        raise PluginError(
            f"no plugin {name!r} in entry-point group {group!r} "
            f"(installed: {', '.join(available(group)) or 'none'}); install the distribution that provides it"
        )
    try:
        if builtin is not None:
            module, _, attr = builtin.partition(":")
            return getattr(importlib.import_module(module), attr)
        return others[0].load()
    except Exception as e:
        raise PluginError(f"plugin {name!r} in {group!r} failed to load: {type(e).__name__}: {e}") from e
