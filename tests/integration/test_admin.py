"""Topics created, described, altered and deleted through Gatekeeper with admin clients."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted
from confluent_kafka import KafkaException
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
)

from harness.waiting import wait_for
from tests.integration.conftest import in_thread

pytestmark = pytest.mark.integration


def _wait_all(futures: dict[Any, Any]) -> dict[Any, Any]:
    return {k: f.result(30) for k, f in futures.items()}


def _topics(admin: AdminClient) -> dict[str, Any]:
    return admin.list_topics(timeout=15).topics


def _confluent_admin_scenario(gk: str, direct: str) -> dict[str, Any]:
    admin = AdminClient({"bootstrap.servers": gk})
    check = AdminClient({"bootstrap.servers": direct})
    out: dict[str, Any] = {}
    _wait_all(admin.create_topics([NewTopic("adm-a", 3, 1), NewTopic("adm-b", 1, 1, config={"retention.ms": "3600000"})]))
    wait_for(lambda: {"adm-a", "adm-b"} <= set(_topics(check)), 30, "adm-a and adm-b in the broker's metadata")
    out["created"] = {n: len(t.partitions) for n, t in _topics(check).items() if n.startswith("adm-")}
    out["described"] = {n: len(t.partitions) for n, t in _topics(admin).items() if n.startswith("adm-")}
    res = ConfigResource(ConfigResource.Type.TOPIC, "adm-b")
    out["retention_before"] = _wait_all(admin.describe_configs([res]))[res]["retention.ms"].value
    alter = ConfigResource(ConfigResource.Type.TOPIC, "adm-b", incremental_configs=[
        ConfigEntry("retention.ms", "7200000", incremental_operation=AlterConfigOpType.SET)])
    _wait_all(admin.incremental_alter_configs([alter]))

    def retention() -> str:
        return str(_wait_all(check.describe_configs([res]))[res]["retention.ms"].value)

    # The broker answers the alter once the controller committed it; its own metadata follows.
    wait_for(lambda: retention() != out["retention_before"], 30, "adm-b's new retention.ms on the broker")
    out["retention_after"] = retention()
    _wait_all(admin.create_partitions([NewPartitions("adm-b", 2)]))
    wait_for(lambda: len(_topics(check)["adm-b"].partitions) != 1, 30, "adm-b's new partition count in the broker's metadata")
    out["b_partitions"] = len(_topics(check)["adm-b"].partitions)
    cluster = admin.describe_cluster().result(30)
    out["cluster_nodes"] = [(n.host, n.port) for n in cluster.nodes]
    _wait_all(admin.delete_topics(["adm-a", "adm-b"]))
    wait_for(lambda: not any(n.startswith("adm-") for n in _topics(check)), 30, "adm-a and adm-b to be deleted",
             interval=0.3)
    out["after_delete"] = sorted(n for n in _topics(check) if n.startswith("adm-"))
    try:
        _wait_all(admin.delete_topics(["adm-never-existed"]))
        out["missing_delete"] = "ok"
    except KafkaException as e:
        out["missing_delete"] = e.args[0].name()
    return out


@pytest_twisted.inlineCallbacks
def test_confluent_admin_through_gatekeeper(gateway, kafka_broker):
    out = yield in_thread(_confluent_admin_scenario, gateway.bootstrap, kafka_broker.bootstrap)
    assert out["created"] == {"adm-a": 3, "adm-b": 1}
    assert out["described"] == {"adm-a": 3, "adm-b": 1}
    assert (out["retention_before"], out["retention_after"]) == ("3600000", "7200000")
    assert out["b_partitions"] == 2
    # Clients only ever learn Gatekeeper's addresses, never the broker's.
    assert out["cluster_nodes"] == [("127.0.0.1", gateway.ports.broker_ports[0])]
    assert out["after_delete"] == []
    assert out["missing_delete"] == "UNKNOWN_TOPIC_OR_PART"
    ops = {(i["operation"], i["resource"]["name"]) for i in gateway.inputs}
    for expected in [("create_topic", "adm-a"), ("describe_topic_config", "adm-b"), ("alter_topic_config", "adm-b"),
                     ("create_partitions", "adm-b"), ("delete_topic", "adm-a"), ("list_topics", "kafka-cluster")]:
        assert expected in ops


def _kafka_python_admin_scenario(gk: str, direct: str) -> dict[str, Any]:
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=gk)
    admin.create_topics({"kpadm-x": {"num_partitions": 2, "replication_factor": 1}})
    admin.wait_for_topics(["kpadm-x"])
    described = admin.describe_topics(["kpadm-x"])
    admin.delete_topics(["kpadm-x"])
    admin.close()
    check = AdminClient({"bootstrap.servers": direct})
    wait_for(lambda: "kpadm-x" not in _topics(check), 30, "kpadm-x to be deleted", interval=0.3)
    return {"described": described, "left": "kpadm-x" in _topics(check)}


@pytest_twisted.inlineCallbacks
def test_kafka_python_admin_through_gatekeeper(gateway, kafka_broker):
    out = yield in_thread(_kafka_python_admin_scenario, gateway.bootstrap, kafka_broker.bootstrap)
    assert len(out["described"]) == 1 and len(out["described"][0]["partitions"]) == 2
    assert out["left"] is False
