"""Mask decisions applied to Kafka record data: pure functions over decoded bodies.

A ``mask`` decision on ``produce`` rewrites the records of that topic in the Produce request
before the broker sees them; on ``consume`` it rewrites that topic's partitions in the Fetch
response before the client does. The record batches are rewritten by ``batches.rewrite`` (every
codec, CRC and lengths recomputed), each record by the decision's compiled mask plan
(``gatekeeper.masking``). Nothing here touches the reactor: the connection core may run these
functions on a worker thread, and it applies the counts to the metrics afterwards.

Fail closed: a Produce partition whose records cannot be masked (an older message format, a
corrupt batch, a record a rule with ``on_error: deny`` cannot apply to) refuses its topic with
POLICY_VIOLATION; a Fetch partition whose records cannot be masked loses its records (never
forwarded raw), and the error is counted and reported for the log.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import attrs

from gatekeeper.api import Resource
from gatekeeper.kafka import batches
from gatekeeper.kafka.apis.base import Resolve, named_topic, topic_resource
from gatekeeper.kafka.records import batch_spans
from gatekeeper.kafka.request import DecodedRequest
from gatekeeper.masking import RecordRefused

__all__ = [
    "MASKABLE",
    "MaskCounts",
    "ProduceMasking",
    "fetch_mask_keys",
    "mask_fetch",
    "mask_produce",
    "mask_share_fetch",
    "masked_by_topic",
    "produce_plans",
]

# The operations that carry records, and the direction a mask on them applies in.
MASKABLE = {"produce": "produce", "consume": "consume"}


def produce_plans(body: Any, plans: Mapping[Resource, Any], resolve: Resolve) -> dict[int, tuple[str, Any]]:
    """The Produce request's topics (by index) that have a mask plan: (topic name, plan)."""
    out = {}
    for i, t in enumerate(body.topic_data):
        resource = named_topic(t, resolve)
        if resource in plans:
            out[i] = (resource.name, plans[resource])
    return out


def fetch_mask_keys(request: DecodedRequest, plans: Mapping[Resource, Any], resolve: Resolve) -> dict[Any, tuple[str, Any]]:
    """How the Fetch response will name each masked topic (its name before v13, its topic id
    from v13) -> (topic name, plan)."""
    version = request.header.api_version
    out = {}
    for t in request.body.topics:
        name, topic_id = getattr(t, "topic", None), getattr(t, "topic_id", None)
        resource = topic_resource(name, topic_id, resolve)
        if resource in plans:
            out[topic_id if version >= 13 else name] = (resource.name, plans[resource])
    return out


@attrs.define
class MaskCounts:
    """What masking did, for the metrics (applied on the reactor thread) and the log."""

    records: Counter[str] = attrs.field(factory=Counter)  # topic -> records changed
    fields: Counter[tuple[str, str]] = attrs.field(factory=Counter)  # (topic, masker) -> fields masked
    errors: Counter[str] = attrs.field(factory=Counter)  # kind -> count
    truncated: int = 0  # incomplete trailing batches dropped from Fetch responses (not errors)
    problems: list[str] = attrs.field(factory=list)  # log lines (never a record's content)


@attrs.frozen
class ProduceMasking:
    """The masked records of a Produce request's masked topics, and the topics refused."""

    records: Mapping[tuple[int, int], bytes]  # (topic index, partition index) -> masked records
    refused: Mapping[int, str]  # topic index -> why (POLICY_VIOLATION), naming partition and offset delta
    counts: MaskCounts


class _Counting:
    """The per-record callback for ``batches.rewrite``: applies a plan and counts."""

    def __init__(self, plan: Any, topic: str, counts: MaskCounts) -> None:
        self.plan, self.topic, self.counts = plan, topic, counts

    def __call__(self, record: batches.Record) -> tuple[bytes | None, bytes | None, Any] | None:
        result = self.plan.apply(record.key, record.value, record.headers)
        if not result.changed:
            return None
        self.counts.records[self.topic] += 1
        for masker, n in result.fields.items():
            self.counts.fields[(self.topic, masker)] += n
        return result.key, result.value, result.headers


def mask_produce(body: Any, plans: Mapping[int, tuple[str, Any]], max_decompressed: int) -> ProduceMasking:
    """Mask the records of ``body.topic_data[i]`` for each ``i`` in ``plans`` (topic name, plan).

    ``body`` is not changed; the caller swaps the masked records in."""
    counts = MaskCounts()
    out: dict[tuple[int, int], bytes] = {}
    refused: dict[int, str] = {}
    for ti, (topic, plan) in plans.items():
        fn = _Counting(plan, topic, counts)
        for pi, p in enumerate(body.topic_data[ti].partition_data):
            try:
                done = batches.rewrite(p.records or b"", fn, complete_only=True, max_decompressed=max_decompressed)
            except RecordRefused as e:
                counts.errors["record_refused"] += 1
                where = "; ".join(getattr(e, "__notes__", ())).removeprefix("while rewriting ") or "a record"
                refused[ti] = f"partition {p.index}: {where} cannot be masked as the policy requires ({e}); refused, never stored raw"
                break
            except batches.LegacyFormat:
                counts.errors["legacy_format"] += 1
                refused[ti] = f"partition {p.index}: records in a message format older than v2 cannot be masked; refused"
                break
            except batches.BatchError as e:
                counts.errors["corrupt_batch"] += 1
                refused[ti] = f"partition {p.index}: record batch cannot be masked: {e}; refused"
                break
            if done.changed:
                out[(ti, pi)] = done.data
    return ProduceMasking(out, refused, counts)


def mask_fetch(body: Any, version: int, plans: Mapping[Any, tuple[str, Any]], max_decompressed: int) -> MaskCounts:
    """Mask, in place, the partitions of ``body`` (a Fetch response) whose topic key (the name
    before v13, the topic id from v13) is in ``plans`` (topic name, plan). Everything else in
    the response (errors, watermarks, aborted transactions, other topics) is left as it is."""
    counts = MaskCounts()
    for t in body.responses or ():
        key = t.topic_id if version >= 13 else t.topic
        found = plans.get(key)
        if found is None:
            continue
        topic, plan = found
        fn = _Counting(plan, topic, counts)
        for p in t.partitions or ():
            if not p.records:
                continue
            try:
                done = batches.rewrite(p.records, fn, complete_only=False, max_decompressed=max_decompressed)
            except RecordRefused as e:  # a consume rule with on_error: deny
                kind, why = "record_refused", f"a record cannot be masked ({e})"
            except batches.LegacyFormat:
                kind, why = "legacy_format", "records in a message format older than v2 cannot be masked"
            except batches.BatchError as e:
                kind, why = "corrupt_batch", f"record batch cannot be masked: {e}"
            else:
                if done.dropped_tail:
                    counts.truncated += 1
                p.records = done.data
                continue
            counts.errors[kind] += 1
            counts.problems.append(f"topic {topic!r} partition {p.partition_index}: {why}; its records were dropped from the response")
            p.records = b""
    return counts


def mask_share_fetch(body: Any, plans: Mapping[Any, tuple[str, Any]], max_decompressed: int) -> MaskCounts:
    """Mask, in place, the partitions of ``body`` (a ShareFetch response) whose topic id is in
    ``plans`` (topic name, plan), as :func:`mask_fetch` does a Fetch response's; a masked
    record keeps its offset, and no record is dropped or reordered. Where masking drops records
    the client would have read (a record set that cannot be masked loses them all), the
    partition's acquired records are cut to the complete records it does get: the client would
    otherwise take the missing offsets for gaps and acknowledge them; left out, they stay
    acquired until their lock times out and are delivered again. An incomplete trailing batch,
    which a client skips itself, changes nothing."""
    before = {(t.topic_id, p.partition_index): _last_offset(p.records)
              for t in body.responses or () if t.topic_id in plans for p in t.partitions or ()}
    counts = mask_fetch(body, 13, plans, max_decompressed)
    for t in body.responses or ():
        if t.topic_id not in plans:
            continue
        for p in t.partitions or ():
            last = _last_offset(p.records)
            was = before.get((t.topic_id, p.partition_index))
            if was is not None and (last is None or last < was):
                p.acquired_records = clip_acquired(p.acquired_records or [], last)
    return counts


def _last_offset(records: bytes | None) -> int | None:
    spans = list(batch_spans(records))
    return spans[-1][1] if spans else None


def clip_acquired(acquired: list[Any], last: int | None) -> list[Any]:
    """The acquired-record ranges (``first_offset``..``last_offset``) cut at offset ``last``
    (None: nothing is left)."""
    if last is None:
        return []
    out = []
    for a in acquired:
        if a.first_offset > last:
            continue
        a.last_offset = min(a.last_offset, last)
        out.append(a)
    return out


def masked_by_topic(counts: MaskCounts) -> dict[str, tuple[int, int]]:
    """Per topic: (records masked, fields masked), for the audit trail."""
    fields: Counter[str] = Counter()
    for (topic, _masker), n in counts.fields.items():
        fields[topic] += n
    return {topic: (counts.records[topic], fields[topic]) for topic in set(counts.records) | set(fields)}
