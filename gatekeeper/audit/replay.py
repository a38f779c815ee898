"""Replaying a session: its timeline from the trail (pure: ``timeline``, ``ranges``) and, on
request, the very Kafka records it produced or consumed, read back from the cluster by their
recorded offsets (``read_back``: a kafka-python consumer, assign + seek, no group) — through
Gatekeeper with the caller's own identity, so today's policy and masking apply to the replay.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

__all__ = ["Range", "ReadBack", "ranges", "read_back", "session_records", "timeline"]


@attrs.frozen
class Range:
    """Offsets ``first..last`` of ``topic[partition]`` that the session ``produced`` or ``fetched``
    in the request recorded at ``time``."""

    direction: str  # produced | fetched
    topic: str
    partition: int
    first: int
    last: int
    time: str


@attrs.frozen
class ReadBack:
    range: Range
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: int
    missing: bool = False  # the offsets from here to range.last were not returned (retention, compaction)


def session_records(records: Iterable[Mapping[str, Any]], session: str) -> list[Mapping[str, Any]]:
    return [r for r in records if r.get("session") == session]


def _hms(t: Any) -> str:
    return str(t).replace("T", " ").rstrip("Z")[:23] if t else "-"


def _principal(p: Any) -> str:
    if not isinstance(p, Mapping):
        return "anonymous"
    extra = [p.get("mechanism") or "?"]
    if p.get("issuer"):
        extra.append(f"issuer {p['issuer']}")
    if p.get("groups"):
        extra.append(f"groups {','.join(p['groups'])}")
    return f"{p.get('sub')} ({'; '.join(extra)})"


def _partitions(outcome: Mapping[str, Any]) -> str:
    parts = []
    for p in outcome.get("partitions") or ():
        where = f"{p.get('topic')}[{p.get('partition')}]"
        if "base_offset" in p:
            where += f" offsets {p['base_offset']}+{p.get('record_count', '?')}"
        elif "first_offset" in p:
            where += f" offsets {p['first_offset']}..{p.get('last_offset')}"
        if p.get("error_code"):
            where += f" error {p['error_code']}"
        parts.append(where)
    mid = outcome.get("message_id")
    if isinstance(mid, Mapping):  # a Pulsar SEND: where the broker stored it
        where = f"message id {mid.get('ledger_id')}:{mid.get('entry_id')}"
        if mid.get("partition") is not None:
            where += f" partition {mid['partition']}"
        if mid.get("batch_index") is not None:
            where += f" batch index {mid['batch_index']}"
        parts.append(where)
    return "; ".join(parts)


def _line(r: Mapping[str, Any]) -> str:
    kind = r.get("kind")
    if kind == "session_start":
        client = r.get("client") or {}
        tls = r.get("tls")
        text = f"session start on listener {r.get('listener')} from {client.get('address')}:{client.get('port')}"
        if isinstance(tls, Mapping):
            text += f", TLS {tls.get('version') or ''}".rstrip()
            cert = tls.get("client_certificate")
            if isinstance(cert, Mapping):
                text += f", client certificate {cert.get('subject')}"
        return text
    if kind == "authentication":
        token = r.get("token") or {}
        if r.get("result") == "success":
            text = f"authenticated {_principal(r.get('principal'))} with {r.get('mechanism')}"
            if token:
                text += f", token jti {token.get('jti')} expiring {token.get('exp')}"
            return text
        return f"authentication with {r.get('mechanism')} FAILED: {r.get('reason')}"
    if kind == "request":
        api = r.get("api") or {}
        head = f"{api.get('name')} v{api.get('version')}"
        if r.get("correlation_id") is not None:
            head += f" #{r['correlation_id']}"
        ops = []
        for op in r.get("operations") or ():
            inp, dec, enf = op.get("input") or {}, op.get("decision") or {}, op.get("enforced") or {}
            res = inp.get("resource") or {}
            text = f"{inp.get('operation')} {res.get('type')}:{res.get('name')} -> {dec.get('action')}"
            text += f" ({dec.get('reason')})" if dec.get("reason") else ""
            text += f", {enf.get('result')}"
            if "error_code" in enf:
                text += f" error {enf['error_code']}"
            if "masked_fields" in enf:
                text += f" {enf['masked_fields']} fields masked"
            if isinstance(enf.get("approval"), Mapping):
                text += f" approval {enf['approval'].get('id')} {enf['approval'].get('status')}"
            ops.append(text)
        outcome = r.get("outcome") or {}
        tail = _partitions(outcome)
        if outcome.get("error"):
            tail = f"{tail}; {outcome['error']}" if tail else str(outcome["error"])
        latency = r.get("latency_ms")
        body = "; ".join(ops) or "no decided operation"
        return f"{head}: {body}" + (f" => {tail}" if tail else "") + (f" (+{latency}ms)" if latency is not None else "")
    if kind == "approval":
        req = r.get("request") or {}
        return f"approval {req.get('id')} {r.get('event')}: {req.get('operation')} {req.get('resource', {}).get('name')}"
    if kind == "session_end":
        b = r.get("bytes") or {}
        return (f"session end ({r.get('ended_by')}): {r.get('reason')} after {r.get('duration_ms')}ms, "
                f"{r.get('requests')} requests, {b.get('from_client')}B from client, {b.get('to_client')}B to client")
    return f"{kind}"


def timeline(records: Iterable[Mapping[str, Any]]) -> list[str]:
    """One line per record of a session, oldest first."""
    ordered = sorted(records, key=lambda r: (str(r.get("time")), r.get("seq", 0)))
    return [f"{_hms(r.get('time'))}  {_line(r)}" for r in ordered]


def ranges(records: Iterable[Mapping[str, Any]]) -> list[Range]:
    """The offsets a session's requests produced (produce: base offset and record count) and
    fetched (fetch: first and last offset returned), oldest first; errored partitions left out."""
    out = []
    for r in sorted(records, key=lambda r: (str(r.get("time")), r.get("seq", 0))):
        if r.get("kind") != "request":
            continue
        for p in (r.get("outcome") or {}).get("partitions") or ():
            if p.get("error_code"):
                continue
            topic, partition = p.get("topic"), p.get("partition")
            if not isinstance(topic, str) or not isinstance(partition, int):
                continue
            if isinstance(p.get("base_offset"), int) and p["base_offset"] >= 0 and p.get("record_count"):
                out.append(Range("produced", topic, partition, p["base_offset"],
                                 p["base_offset"] + int(p["record_count"]) - 1, str(r.get("time"))))
            elif isinstance(p.get("first_offset"), int) and isinstance(p.get("last_offset"), int) \
                    and p["last_offset"] >= p["first_offset"]:
                out.append(Range("fetched", topic, partition, p["first_offset"], p["last_offset"], str(r.get("time"))))
    return out


def read_back(wanted: Iterable[Range], settings: Mapping[str, Any], *, timeout: float = 10.0) -> Iterator[ReadBack]:
    """The records at each range's offsets, read with a consumer made from ``settings``
    (kafka-python keyword arguments: bootstrap_servers — Gatekeeper's —, client_id, SASL …).
    Offsets no longer there (retention, compaction, an aborted transaction) end their range
    with one ``missing`` item. Raises kafka-python's errors (e.g. an authorization failure)."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(enable_auto_commit=False, group_id=None, **dict(settings))
    try:
        for rng in wanted:
            tp = TopicPartition(rng.topic, rng.partition)
            consumer.assign([tp])
            consumer.seek(tp, rng.first)
            nxt = rng.first
            deadline = time.monotonic() + timeout
            while nxt <= rng.last and time.monotonic() < deadline:
                batch = consumer.poll(timeout_ms=500, max_records=500)
                for m in batch.get(tp, ()):
                    if m.offset < nxt or m.offset > rng.last:
                        continue
                    nxt = m.offset + 1
                    deadline = time.monotonic() + timeout
                    yield ReadBack(rng, m.offset, m.key, m.value, tuple((k, v) for k, v in (m.headers or ())),
                                   m.timestamp)
                if consumer.position(tp) > rng.last:
                    break
            if nxt <= rng.last:
                yield ReadBack(rng, nxt, None, None, (), 0, missing=True)
    finally:
        consumer.close()
