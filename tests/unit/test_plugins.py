import pytest

from gatekeeper.kafka.adapter import KafkaAdapter
from gatekeeper.plugins import ADAPTERS, PluginError, available, load


def test_builtin_kafka_adapter_is_registered_through_the_entry_point() -> None:
    assert "kafka" in available(ADAPTERS)
    assert load(ADAPTERS, "kafka") is KafkaAdapter


def test_missing_plugin_says_what_is_installed() -> None:
    with pytest.raises(PluginError, match=r"no plugin 'amqp' .*installed: kafka"):
        load(ADAPTERS, "amqp")
