"""Reading an audit trail back: records (``iter_records``) and their verification (``verify``).

SOURCE is either

- a directory of segments written by the ``file`` sink (``/var/lib/gatekeeper/audit``), or one
  segment file;
- ``kafka:<bootstrap>/<topic>``: a topic written by the ``kafka`` sink, e.g.
  ``kafka:broker1:9092,broker2:9092/gatekeeper-audit``. ``kafka_settings`` are kafka-python
  keyword arguments (security protocol, SASL, TLS), e.g. ``client_settings(config.upstream,
  credentials)`` for the cluster Gatekeeper itself writes to.

Records of one chain come in chain order; the chains of a source are merged by time. The
Kafka reader reads every partition up to the end it saw when it started, drops exact
duplicates (a write the producer retried) and merges partitions by timestamp.
"""

from __future__ import annotations

import collections
import heapq
import json
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import attrs

from gatekeeper.audit.file_sink import SEGMENT_NAME, segments
from gatekeeper.audit.records import CHECKPOINT, parse_time
from gatekeeper.audit.verify import ChainCheck, Problem, Report, slim

__all__ = ["Entry", "FileSource", "KafkaSource", "ReaderError", "iter_entries", "iter_records",
           "operations", "parse_source", "verify"]

_DEDUP_WINDOW = 100_000  # per chain: seqs remembered to drop repeated deliveries


class ReaderError(Exception):
    """The trail cannot be read (no such directory, topic or broker): the operator's input."""


@attrs.frozen
class FileSource:
    path: Path

    def __str__(self) -> str:
        return str(self.path)


@attrs.frozen
class KafkaSource:
    bootstrap: str
    topic: str

    def __str__(self) -> str:
        return f"kafka:{self.bootstrap}/{self.topic}"


def parse_source(source: str | Path | FileSource | KafkaSource) -> FileSource | KafkaSource:
    """``kafka:<bootstrap>/<topic>`` or a path."""
    if isinstance(source, FileSource | KafkaSource):
        return source
    text = str(source)
    if text.startswith("kafka:"):
        bootstrap, _, topic = text[len("kafka:"):].rpartition("/")
        if not bootstrap or not topic:
            raise ReaderError(f"{text!r}: expected kafka:<host:port[,host:port…]>/<topic>")
        return KafkaSource(bootstrap, topic)
    return FileSource(Path(text))


@attrs.frozen
class Entry:
    """One stored line: the record (None when the line is not JSON: ``error`` says why) and
    where it is (``FILE:LINE`` or ``TOPIC[P]@OFFSET``). ``segment`` is the file's name, and
    ``first``/``last`` whether the line is the first or last of its segment."""

    where: str
    record: dict[str, Any] | None
    error: str | None = None
    segment: str | None = None
    first: bool = False
    last: bool = False


# -- records -----------------------------------------------------------------------------------


def iter_records(source: str | Path | FileSource | KafkaSource, since: float | None = None,
                 until: float | None = None, *, kafka_settings: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """The records of a trail with ``since <= time <= until`` (seconds since the epoch), each
    chain in order, chains merged by time. Lines that are not records are skipped (``verify``
    reports them)."""
    for entry in iter_entries(source, since, until, kafka_settings=kafka_settings):
        if entry.record is not None:
            yield entry.record


def operations(record: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The decided operations of a ``request`` record (``{"input", "decision", "enforced"}``
    each), or [] for other kinds."""
    if record.get("kind") != "request":
        return []
    return list(record.get("operations") or ())


def _time_of(record: Mapping[str, Any] | None) -> float:
    try:
        return parse_time(record["time"]) if record is not None else 0.0
    except (KeyError, TypeError, ValueError):
        return 0.0


def iter_entries(source: str | Path | FileSource | KafkaSource, since: float | None = None,
                 until: float | None = None, *, kafka_settings: Mapping[str, Any] | None = None) -> Iterator[Entry]:
    src = parse_source(source)
    if isinstance(src, KafkaSource):
        entries: Iterable[Entry] = _dedup(_kafka_entries(src, dict(kafka_settings or {}), since))
    else:
        chains = [_chain_entries(files, since) for files in _file_chains(src.path).values()]
        entries = chains[0] if len(chains) == 1 else heapq.merge(*chains, key=lambda e: _time_of(e.record))
    for entry in entries:
        if entry.record is not None and (since is not None or until is not None):
            t = _time_of(entry.record)
            if since is not None and t < since:
                continue
            if until is not None and t > until:
                continue
        yield entry


def _file_chains(path: Path) -> dict[str, list[tuple[int, Path]]]:
    if path.is_file():
        m = SEGMENT_NAME.match(path.name)
        return {m["chain"] if m else path.name: [(int(m["seq"]) if m else 0, path)]}
    if not path.is_dir():
        raise ReaderError(f"{path}: no such directory (expected a directory of audit segments or "
                          "kafka:<bootstrap>/<topic>)")
    found = segments(path)
    return dict(sorted(found.items()))


def _segment_entries(path: Path) -> Iterator[Entry]:
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below; lines are streamed
    except OSError as e:
        raise ReaderError(f"{path}: {e.strerror or e}") from e
    with f:
        previous: tuple[int, bytes] | None = None
        for number, raw in enumerate(f, start=1):
            if previous is not None:
                yield _entry(path, *previous, first=previous[0] == 1, last=False)
            previous = (number, raw)
        if previous is not None:
            yield _entry(path, *previous, first=previous[0] == 1, last=True)


def _entry(path: Path, number: int, raw: bytes, *, first: bool, last: bool) -> Entry:
    where = f"{path.name}:{number}"
    if not raw.endswith(b"\n"):
        return Entry(where, None, "the line is cut off (no newline at its end): truncated", path.name, first, last)
    try:
        record = json.loads(raw)
    except ValueError as e:
        return Entry(where, None, f"not a JSON record ({getattr(e, 'msg', e)}): edited or damaged", path.name,
                     first, last)
    if not isinstance(record, dict):
        return Entry(where, None, "not a JSON object: edited or damaged", path.name, first, last)
    return Entry(where, record, None, path.name, first, last)


def _first_time(path: Path) -> float | None:
    try:
        with open(path, "rb") as f:
            line = f.readline()
        return _time_of(json.loads(line))
    except (OSError, ValueError):
        return None


def _chain_entries(files: list[tuple[int, Path]], since: float | None) -> Iterator[Entry]:
    for i, (_, path) in enumerate(files):
        if since is not None and i + 1 < len(files):
            nxt = _first_time(files[i + 1][1])
            if nxt is not None and nxt < since:
                continue  # every record of this segment is older than the next one's first
        yield from _segment_entries(path)


# -- Kafka -------------------------------------------------------------------------------------


def _kafka_entries(src: KafkaSource, settings: dict[str, Any], since: float | None,
                   idle_timeout: float = 30.0) -> Iterator[Entry]:
    from kafka import KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError

    settings.setdefault("bootstrap_servers", src.bootstrap)
    try:
        consumer = KafkaConsumer(enable_auto_commit=False, group_id=None, client_id="gatekeeper-audit-reader",
                                 **settings)
    except KafkaError as e:
        raise ReaderError(f"{src}: cannot connect: {e}") from e
    try:
        parts = consumer.partitions_for_topic(src.topic)
        if not parts:
            raise ReaderError(f"{src}: no such topic (or not allowed to describe it)")
        tps = [TopicPartition(src.topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        end = consumer.end_offsets(tps)
        if since is not None:
            found = consumer.offsets_for_times({tp: int(since * 1000) for tp in tps})
            for tp in tps:
                hit = found.get(tp)
                consumer.seek(tp, hit.offset if hit is not None else end[tp])
        else:
            consumer.seek_to_beginning(*tps)
        active = {tp for tp in tps if consumer.position(tp) < end[tp]}
        buffers: dict[Any, collections.deque[Any]] = {tp: collections.deque() for tp in tps}
        while active or any(buffers.values()):
            last_progress = time.monotonic()
            while any(tp in active and not buffers[tp] for tp in tps):
                batch = consumer.poll(timeout_ms=500, max_records=2000)
                for tp, messages in batch.items():
                    for m in messages:
                        if m.offset < end[tp]:
                            buffers[tp].append(m)
                    last_progress = time.monotonic()
                for tp in list(active):
                    if consumer.position(tp) >= end[tp]:
                        active.discard(tp)
                    elif len(buffers[tp]) > 5000:
                        consumer.pause(tp)
                    else:
                        consumer.resume(tp)
                if time.monotonic() - last_progress > idle_timeout:
                    raise ReaderError(f"{src}: no records for {idle_timeout:.0f}s while reading "
                                      f"{', '.join(f'partition {tp.partition}' for tp in active)}")
            ready = [tp for tp in tps if buffers[tp]]
            if not ready:
                break
            tp = min(ready, key=lambda t: (buffers[t][0].timestamp, t.partition))
            m = buffers[tp].popleft()
            yield _kafka_entry(src.topic, m)
    except KafkaError as e:
        raise ReaderError(f"{src}: {type(e).__name__}: {e}") from e
    finally:
        consumer.close()


def _kafka_entry(topic: str, m: Any) -> Entry:
    where = f"{topic}[{m.partition}]@{m.offset}"
    try:
        record = json.loads(m.value)
    except (TypeError, ValueError) as e:
        return Entry(where, None, f"not a JSON record ({e}): not written by Gatekeeper, or damaged")
    if not isinstance(record, dict):
        return Entry(where, None, "not a JSON object: not written by Gatekeeper, or damaged")
    return Entry(where, record)


def _dedup(entries: Iterable[Entry]) -> Iterator[Entry]:
    """Drops exact repeats of a record (same chain, seq and hash): a write the producer or
    the writer retried. A different record with a seen seq is kept (verify reports it)."""
    seen: dict[str, dict[int, str]] = {}
    for entry in entries:
        r = entry.record
        if r is not None and isinstance(r.get("seq"), int):
            chain = seen.setdefault(str(r.get("chain")), {})
            if chain.get(r["seq"]) == r.get("hash"):
                continue
            chain.setdefault(r["seq"], str(r.get("hash")))
            if len(chain) > _DEDUP_WINDOW:
                for seq in sorted(chain)[: len(chain) - _DEDUP_WINDOW]:
                    del chain[seq]
        yield entry


# -- verify ------------------------------------------------------------------------------------


def verify(source: str | Path | FileSource | KafkaSource, keys: Mapping[str, bytes] | None, *, partial: bool = False,
           closed: bool = False, kafka_settings: Mapping[str, Any] | None = None) -> Report:
    """Check every chain of the trail: hashes, sequence, links, checkpoint signatures (with
    ``keys``: key id → key; None checks the chain only), and for files the segment names and
    boundaries. ``partial``: a chain may start after seq 0 (the trail's start was archived or
    is past the topic's retention). ``closed``: every chain must end with a stop checkpoint."""
    src = parse_source(source)
    if isinstance(src, KafkaSource):
        return _verify_kafka(src, keys, partial, closed, dict(kafka_settings or {}))
    return _verify_files(src.path, keys, partial, closed)


def _verify_files(path: Path, keys: Mapping[str, bytes] | None, partial: bool, closed: bool) -> Report:
    chains = _file_chains(path)
    problems: list[Problem] = []
    summaries = []
    notes: list[str] = []
    total = 0
    if not chains:
        raise ReaderError(f"{path}: no audit segments (audit-<chain>-<seq>.jsonl) there")
    for chain, files in chains.items():
        check = ChainCheck(chain, keys, partial=partial, closed=closed)
        last_of_previous: dict[str, Any] | None = None
        previous_name = None
        for index, (named_seq, file) in enumerate(files):
            count = 0
            for entry in _segment_entries(file):
                count += 1
                if entry.record is None:
                    check.problem(entry.where, str(entry.error))
                    continue
                record = entry.record
                if entry.first:
                    _segment_start(check, entry, named_seq, record, last_of_previous, previous_name, index)
                check.feed(entry.where, record)
                if entry.last:
                    last_of_previous, previous_name = record, file.name
            if count == 0:
                notes.append(f"{file.name}: empty segment (a writer stopped right after creating it)")
        summary = check.finish()
        total += summary.records
        problems.extend(check.problems)
        summaries.append(summary)
    return Report(total, tuple(summaries), tuple(problems), tuple(notes + _notes(summaries, keys)))


def _segment_start(check: ChainCheck, entry: Entry, named_seq: int, record: Mapping[str, Any],
                   last: Mapping[str, Any] | None, last_name: str | None, index: int) -> None:
    seq = record.get("seq")
    if seq != named_seq:
        check.problem(entry.where, f"the segment is named for seq {named_seq} but starts with seq {seq} "
                                   "(renamed, or inserted)", seq if isinstance(seq, int) else None)
    if index == 0 or last is None:
        return
    ends_segment = last.get("kind") == CHECKPOINT and last.get("reason") in ("rotate", "stop")
    resumes = record.get("kind") == CHECKPOINT and record.get("reason") == "start"
    if not ends_segment and not resumes:
        check.problem(f"{last_name}", f"the segment ends at seq {last.get('seq')} without a closing checkpoint and "
                                      f"{entry.where} does not start a new writer run: truncated", last.get("seq"))
    if last.get("kind") == CHECKPOINT and last.get("reason") == "stop" and not resumes:
        check.problem(entry.where, "records after a stop checkpoint that do not start with a writer's start "
                                   "checkpoint (inserted)", seq if isinstance(seq, int) else None)


def _verify_kafka(src: KafkaSource, keys: Mapping[str, bytes] | None, partial: bool, closed: bool,
                  settings: dict[str, Any]) -> Report:
    """Partitions interleave a chain's records (they are keyed by session): each chain's are
    put back in seq order before the checks; repeats of a record are dropped, two different
    records with one seq are reported."""
    by_chain: dict[str, dict[int, tuple[str, dict[str, Any]]]] = {}
    problems: list[Problem] = []
    repeats = 0
    for entry in _kafka_entries(src, settings, None):
        r = entry.record
        if r is None or not isinstance(r.get("seq"), int):
            problems.append(Problem(entry.where, entry.error or "not an audit record (no seq)"))
            continue
        chain = by_chain.setdefault(str(r.get("chain")), {})
        seen = chain.get(r["seq"])
        r = slim(r, keys)
        if seen is not None:
            if seen[1]["hash"] == r["hash"] and not seen[1]["_edited"] and not r["_edited"]:
                repeats += 1
            else:
                problems.append(Problem(entry.where, f"a second, different record with this seq (the first is at "
                                                     f"{seen[0]}): edited or forged", str(r.get("chain")), r["seq"]))
            continue
        chain[r["seq"]] = (entry.where, r)
    summaries = []
    total = 0
    for name in sorted(by_chain):
        check = ChainCheck(name, keys, partial=partial, closed=closed)
        for seq in sorted(by_chain[name]):
            where, record = by_chain[name][seq]
            check.feed(where, record)
        summary = check.finish()
        summaries.append(summary)
        total += summary.records
        problems.extend(check.problems)
    notes = [f"{repeats} repeated deliveries of a record dropped (producer retries)"] if repeats else []
    if not by_chain and not problems:
        notes.append(f"{src}: the topic holds no records")
    return Report(total, tuple(summaries), tuple(problems), tuple(notes + _notes(summaries, keys)))


def _notes(summaries: list[Any], keys: Mapping[str, bytes] | None) -> list[str]:
    out = []
    if keys is None:
        out.append("checkpoint signatures NOT verified (--unsigned): the chain alone does not show a rewrite")
    for s in summaries:
        if s.unsigned:
            out.append(f"chain {s.chain}: {s.unsigned} record(s) after the last checkpoint"
                       f"{'' if s.last_checkpoint_seq is None else f' (seq {s.last_checkpoint_seq})'} are not signed yet")
    return out
