"""The denial matrix's cells for the two Python client families: confluent-kafka (librdkafka)
and kafka-python. Each cell drives a stock client at a refused resource for about ``seconds``
(a client that spins shows it within that window) and reports what the client surfaced:

    {"cell": ..., "error": KAFKA_ERROR_NAME or None, "message": str or None, "records": int, "detail": str}

Resources (see tests/integration/policy_denials/denials.rego): ``denied.t`` may be described but
nothing else; ``hidden.t`` not even described; ``allowed.t`` is open; group ``denied-group``,
transactional id ``denied-txn`` refused; group ``denied-commit`` may not commit offsets,
``denied-fetch`` may not fetch them; client id ``deny-idempotent`` may not init a producer id.
The Java family's cells are the same, in tests/integration/java/DenialProbe.java.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["CELLS", "confluent_cell", "kafka_python_cell"]

CELLS = (
    "produce-acks1", "produce-acksall", "produce-acks0", "consume-subscribe", "consume-mixed", "consume-assign",
    "metadata-topic", "list-topics", "join-group", "commit-offsets", "offset-fetch", "create-topic", "delete-topic",
    "alter-config", "transactional", "idempotent", "delete-records",
)


def _result(cell: str, error: str | None = None, message: str | None = None, records: int = 0, detail: str = "") -> dict[str, Any]:
    return {"cell": cell, "error": error, "message": message, "records": records, "detail": detail}


# -- confluent-kafka (librdkafka) ---------------------------------------------------------------


def confluent_cell(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    return _CONFLUENT[cell](bootstrap, cell, seconds)


def _ck_error(err: Any) -> tuple[str, str]:
    return err.name(), err.str()


def _ck_produce(acks: str) -> Callable[[str, str, float], dict[str, Any]]:
    def run(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
        from confluent_kafka import Producer

        p = Producer({"bootstrap.servers": bootstrap, "client.id": f"ck-{cell}", "acks": acks, "linger.ms": 0,
                      "message.timeout.ms": int(seconds * 1000)})
        errors: list[Any] = []
        for i in range(3 if acks == "0" else 1):
            p.produce("denied.t", f"v{i}".encode(), on_delivery=lambda err, msg: errors.append(err))
        p.flush(seconds + 5)
        if acks == "0":
            time.sleep(seconds)
        first = next((e for e in errors if e is not None), None)
        return _result(cell, *(_ck_error(first) if first else (None, None)), detail=f"{len(errors)} delivery reports")

    return run


def _ck_consume(topics: list[str], group: str | None, assign: bool = False) -> Callable[[str, str, float], dict[str, Any]]:
    def run(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
        from confluent_kafka import Consumer, TopicPartition

        conf = {"bootstrap.servers": bootstrap, "client.id": f"ck-{cell}", "auto.offset.reset": "earliest",
                "enable.auto.commit": False, "group.id": group or f"ck-unused-{cell}"}
        c = Consumer(conf)
        if assign:
            c.assign([TopicPartition(t, 0, 0) for t in topics])
        else:
            c.subscribe(topics)
        first, errors, records = None, 0, 0
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            msg = c.poll(0.2)
            if msg is None:
                continue
            if msg.error():
                errors += 1
                first = first or msg.error()
            else:
                records += 1
        c.close()
        return _result(cell, *(_ck_error(first) if first else (None, None)), records=records, detail=f"{errors} errors")

    return run


def _ck_admin(bootstrap: str, cell: str) -> Any:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap, "client.id": f"ck-{cell}"})


def _ck_future(cell: str, futures: dict[Any, Any], seconds: float, admin: Any) -> dict[str, Any]:
    """The first error among an admin call's futures (``admin`` is kept alive until they resolve)."""
    from confluent_kafka import KafkaException

    for f in futures.values():
        try:
            f.result(timeout=seconds)
        except KafkaException as e:
            return _result(cell, *_ck_error(e.args[0]))
    return _result(cell)


def _ck_metadata(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    md = _ck_admin(bootstrap, cell).list_topics(topic="hidden.t", timeout=seconds)
    err = md.topics["hidden.t"].error
    return _result(cell, *(_ck_error(err) if err else (None, None)))


def _ck_list(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    md = _ck_admin(bootstrap, cell).list_topics(timeout=seconds)
    return _result(cell, detail=",".join(sorted(t for t in md.topics if not t.startswith("__"))))


def _ck_commit(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "client.id": f"ck-{cell}", "group.id": "denied-commit", "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition("allowed.t", 0, 1)], asynchronous=False)
        return _result(cell)
    except KafkaException as e:
        return _result(cell, *_ck_error(e.args[0]))
    finally:
        c.close()


def _ck_offset_fetch(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "client.id": f"ck-{cell}", "group.id": "denied-fetch"})
    try:
        out = c.committed([TopicPartition("allowed.t", 0)], timeout=seconds)
        err = out[0].error
        return _result(cell, *(_ck_error(err) if err else (None, None)))
    except KafkaException as e:
        return _result(cell, *_ck_error(e.args[0]))
    finally:
        c.close()


def _ck_create(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    from confluent_kafka.admin import NewTopic

    admin = _ck_admin(bootstrap, cell)
    return _ck_future(cell, admin.create_topics([NewTopic("denied.created", 1, 1)], request_timeout=seconds), seconds, admin)


def _ck_delete(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    admin = _ck_admin(bootstrap, cell)
    return _ck_future(cell, admin.delete_topics(["denied.t"], request_timeout=seconds), seconds, admin)


def _ck_alter(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

    res = ConfigResource(ResourceType.TOPIC, "denied.t", incremental_configs=[
        ConfigEntry("retention.ms", "1000", incremental_operation=AlterConfigOpType.SET)])
    admin = _ck_admin(bootstrap, cell)
    return _ck_future(cell, admin.incremental_alter_configs([res], request_timeout=seconds), seconds, admin)


def _ck_delete_records(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    from confluent_kafka import TopicPartition

    admin = _ck_admin(bootstrap, cell)
    futures = admin.delete_records([TopicPartition("denied.t", 0, 1)], request_timeout=seconds)
    out = _ck_future(cell, futures, seconds, admin)
    if out["error"] is None:  # per-partition errors come back in the result
        for f in futures.values():
            err = getattr(f.result(), "error", None)
            if err:
                return _result(cell, *_ck_error(err))
    return out


def _ck_transactional(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    from confluent_kafka import KafkaException, Producer

    p = Producer({"bootstrap.servers": bootstrap, "client.id": f"ck-{cell}", "transactional.id": "denied-txn"})
    try:
        p.init_transactions(seconds)
        return _result(cell)
    except KafkaException as e:
        return _result(cell, *_ck_error(e.args[0]))


def _ck_idempotent(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    from confluent_kafka import KafkaException, Producer

    errors: list[Any] = []

    def on_error(err: Any) -> None:
        errors.append(err)

    p = Producer({"bootstrap.servers": bootstrap, "client.id": "deny-idempotent", "enable.idempotence": True,
                  "message.timeout.ms": int(seconds * 1000), "error_cb": on_error})
    reports: list[Any] = []
    p.produce("allowed.t", b"idempotent", on_delivery=lambda err, msg: reports.append(err))
    try:
        p.flush(seconds + 5)
    except (KafkaException, SystemError) as e:
        # A fatal error (the producer id refused) is raised out of the client's poll; the
        # binding wraps it in a SystemError when a callback runs while it is pending.
        fatal = e if isinstance(e, KafkaException) else e.__cause__ or e.__context__
        if isinstance(fatal, KafkaException):
            result = _result(cell, *_ck_error(fatal.args[0]), detail="fatal")
            # Something in the binding keeps this frame alive after the fatal error (seen with
            # gc: the frame outlives the call, referred to from outside Python); so that it does not
            # keep the producer too, with its threads reconnecting to the stopped gateway and
            # logging on stderr for the rest of the run.
            del p
            return result
        raise
    first = next((e for e in reports + errors if e is not None), None)
    return _result(cell, *(_ck_error(first) if first else (None, None)), detail=f"{len(errors)} client errors")


_CONFLUENT: dict[str, Callable[[str, str, float], dict[str, Any]]] = {
    "produce-acks1": _ck_produce("1"),
    "produce-acksall": _ck_produce("all"),
    "produce-acks0": _ck_produce("0"),
    "consume-subscribe": _ck_consume(["denied.t"], "ck-group-1"),
    "consume-mixed": _ck_consume(["allowed.t", "denied.t"], "ck-group-2"),
    "consume-assign": _ck_consume(["denied.t"], None, assign=True),
    "metadata-topic": _ck_metadata,
    "list-topics": _ck_list,
    "join-group": _ck_consume(["allowed.t"], "denied-group"),
    "commit-offsets": _ck_commit,
    "offset-fetch": _ck_offset_fetch,
    "create-topic": _ck_create,
    "delete-topic": _ck_delete,
    "alter-config": _ck_alter,
    "transactional": _ck_transactional,
    "idempotent": _ck_idempotent,
    "delete-records": _ck_delete_records,
}


# -- kafka-python ---------------------------------------------------------------------------


def kafka_python_cell(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    from kafka.errors import KafkaError

    try:
        return _KAFKA_PYTHON[cell](bootstrap, cell, seconds)
    except KafkaError as e:
        return _kp_error(cell, e)


def _kp_error(cell: str, e: Exception, **extra: Any) -> dict[str, Any]:
    import re

    from kafka.errors import for_code

    name = getattr(e, "message", None) or type(e).__name__
    wrapped = re.search(r"\[Error (-?\d+)\]", str(e))
    if name == "KafkaError" and wrapped:  # "Unexpected error in …: [Error 31] …": the broker's code
        name = for_code(int(wrapped.group(1))).message
    return _result(cell, str(name), str(e), **extra)


def _kp_produce(acks: int) -> Callable[[str, str, float], dict[str, Any]]:
    def run(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
        from kafka import KafkaProducer
        from kafka.errors import KafkaError

        p = KafkaProducer(bootstrap_servers=bootstrap, client_id=f"kp-{cell}", acks=acks, linger_ms=0,
                          max_block_ms=int(seconds * 1000), request_timeout_ms=int(seconds * 1000))
        try:
            futures = [p.send("denied.t", f"v{i}".encode()) for i in range(3 if acks == 0 else 1)]
            for f in futures:
                f.get(timeout=seconds)
            if acks == 0:
                time.sleep(seconds)
            return _result(cell)
        except KafkaError as e:
            return _kp_error(cell, e)
        finally:
            p.close(timeout=2)

    return run


def _kp_consume(topics: list[str], group: str | None, assign: bool = False) -> Callable[[str, str, float], dict[str, Any]]:
    def run(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
        from kafka import KafkaConsumer, TopicPartition
        from kafka.errors import KafkaError

        c = KafkaConsumer(bootstrap_servers=bootstrap, client_id=f"kp-{cell}", group_id=group, auto_offset_reset="earliest",
                          enable_auto_commit=False)
        if assign:
            c.assign([TopicPartition(t, 0) for t in topics])
        else:
            c.subscribe(topics)
        first: Exception | None = None
        errors = records = 0
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                # Poll for the whole window left, not a short slice: kafka-python 3.0.12 loses a
                # group join whose SyncGroup answer arrives after poll()'s timer ran out (the next
                # poll sees no rejoin needed and never applies the assignment), so a consumer that
                # rejoined once, as it does when it joins before it has the topic's metadata, can
                # sit with no partitions for the rest of the window and never fetch.
                batch = c.poll(timeout_ms=max(1, int(left * 1000)))
                records += sum(len(v) for v in batch.values())
            except KafkaError as e:
                errors += 1
                first = first or e
                time.sleep(0.05)  # an application's loop around poll(): the client owns the backoff
        c.close()
        if first is None:
            return _result(cell, records=records)
        return _kp_error(cell, first, records=records, detail=f"{errors} errors")

    return run


def _kp_admin(bootstrap: str, cell: str) -> Any:
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id=f"kp-{cell}")


def _kp_metadata(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    out = _kp_admin(bootstrap, cell).describe_topics(["hidden.t"])
    code = out[0]["error_code"] if out else 0
    from kafka.errors import for_code

    return _result(cell, for_code(code).message if code else None, detail=repr(out)[:200])


def _kp_list(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    names = _kp_admin(bootstrap, cell).list_topics()
    return _result(cell, detail=",".join(sorted(t for t in names if not t.startswith("__"))))


def _kp_commit(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    c = KafkaConsumer(bootstrap_servers=bootstrap, client_id=f"kp-{cell}", group_id="denied-commit", enable_auto_commit=False)
    tp = TopicPartition("allowed.t", 0)
    c.assign([tp])
    try:
        c.commit({tp: OffsetAndMetadata(1, "", -1)})
        return _result(cell)
    finally:
        c.close()


def _kp_offset_fetch(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, client_id=f"kp-{cell}", group_id="denied-fetch", enable_auto_commit=False)
    tp = TopicPartition("allowed.t", 0)
    try:
        got = c.committed(tp)
        return _result(cell, detail=f"committed {got}")
    finally:
        c.close()


def _kp_create(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    from kafka.admin import NewTopic

    _kp_admin(bootstrap, cell).create_topics([NewTopic("denied.created", 1, 1)])
    return _result(cell)


def _kp_delete(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    _kp_admin(bootstrap, cell).delete_topics(["denied.t"])
    return _result(cell)


def _kp_alter(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    from kafka.admin import ConfigResource, ConfigResourceType

    out = _kp_admin(bootstrap, cell).alter_configs([ConfigResource(ConfigResourceType.TOPIC, "denied.t", {"retention.ms": "1000"})],
                                                   incremental=True, raise_on_unknown=False)
    return _kp_reported(cell, out)


def _kp_reported(cell: str, out: Any) -> dict[str, Any]:
    """Admin calls that report per-resource errors in their result instead of raising."""
    import re

    from kafka.errors import for_code

    found = re.search(r"\[Error (\d+)\]", repr(out))
    if found and int(found.group(1)):
        return _result(cell, for_code(int(found.group(1))).message, repr(out)[:300])
    return _result(cell, detail=repr(out)[:300])


def _kp_delete_records(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    from kafka import TopicPartition

    out = _kp_admin(bootstrap, cell).delete_records({TopicPartition("denied.t", 0): 1})
    return _kp_reported(cell, out)


def _kp_transactional(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, client_id=f"kp-{cell}", transactional_id="denied-txn",
                      max_block_ms=int(seconds * 1000))
    try:
        p.init_transactions()
        return _result(cell)
    finally:
        p.close(timeout=2)


def _kp_idempotent(bootstrap: str, cell: str, seconds: float) -> dict[str, Any]:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, client_id="deny-idempotent", enable_idempotence=True,
                      max_block_ms=int(seconds * 1000), request_timeout_ms=int(seconds * 1000))
    try:
        p.send("allowed.t", b"idempotent").get(timeout=seconds)
        return _result(cell)
    finally:
        p.close(timeout=2)


_KAFKA_PYTHON: dict[str, Callable[[str, str, float], dict[str, Any]]] = {
    "produce-acks1": _kp_produce(1),
    "produce-acksall": _kp_produce(-1),
    "produce-acks0": _kp_produce(0),
    "consume-subscribe": _kp_consume(["denied.t"], "kp-group-1"),
    "consume-mixed": _kp_consume(["allowed.t", "denied.t"], "kp-group-2"),
    "consume-assign": _kp_consume(["denied.t"], None, assign=True),
    "metadata-topic": _kp_metadata,
    "list-topics": _kp_list,
    "join-group": _kp_consume(["allowed.t"], "denied-group"),
    "commit-offsets": _kp_commit,
    "offset-fetch": _kp_offset_fetch,
    "create-topic": _kp_create,
    "delete-topic": _kp_delete,
    "alter-config": _kp_alter,
    "transactional": _kp_transactional,
    "idempotent": _kp_idempotent,
    "delete-records": _kp_delete_records,
}
