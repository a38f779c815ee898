import pytest

from gatekeeper.kafka.adapter import KafkaAdapter
from gatekeeper.plugins import ADAPTERS, PluginError, available, load


def test_builtin_kafka_adapter_is_registered_through_the_entry_point() -> None:
    assert "kafka" in available(ADAPTERS)
    assert load(ADAPTERS, "kafka") is KafkaAdapter


def test_missing_plugin_says_what_is_installed() -> None:
    with pytest.raises(PluginError, match=r"no plugin 'amqp' .*installed: kafka"):
        load(ADAPTERS, "amqp")


def test_builtins_table_matches_the_entry_points_in_setup_cfg() -> None:
    import configparser
    from pathlib import Path

    from gatekeeper.plugins import BUILTINS

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    section = cfg["options.entry_points"]
    for group, table in BUILTINS.items():
        lines = [line for line in section[group].strip().splitlines() if line.strip()]
        registered = dict(tuple(part.strip() for part in line.split("=", 1)) for line in lines)
        assert registered == table, group


def test_builtin_maskers_and_detectors_load_by_name() -> None:
    from gatekeeper.masking import detectors, maskers
    from gatekeeper.plugins import DETECTORS, MASKERS

    assert {"redact", "hash", "keep", "last4", "email", "null", "drop"} <= set(available(MASKERS))
    assert load(MASKERS, "last4") is maskers.Last4
    assert load(DETECTORS, "credit_card") is detectors.CreditCard


def test_a_third_party_cannot_replace_a_builtin(monkeypatch: pytest.MonkeyPatch) -> None:
    from importlib.metadata import EntryPoint

    import gatekeeper.plugins as plugins

    impostor = EntryPoint(name="hash", value="evil.module:Hash", group=plugins.MASKERS)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [impostor] if group == plugins.MASKERS else [])
    with pytest.raises(PluginError, match="'hash' in 'gatekeeper.maskers' is built in and also registered by evil.module:Hash"):
        load(plugins.MASKERS, "hash")
    same = EntryPoint(name="redact", value="gatekeeper.masking.maskers:Redact", group=plugins.MASKERS)
    monkeypatch.setattr(plugins, "entry_points", lambda group: [same])
    assert load(plugins.MASKERS, "redact").__name__ == "Redact"  # the built-in's own entry point
