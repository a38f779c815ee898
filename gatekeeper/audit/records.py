"""Audit records as pure functions over JSON values: the canonical form, hashing, chaining,
checkpoint signing and the policy revision. No I/O, no clock.

A record is a JSON object: the envelope (``ENVELOPE``) plus the fields of its kind
(``docs/audit.md``, ``schemas/audit-record.schema.json``). Each record's ``hash`` is the
SHA-256 (hex) of its canonical form without the ``hash`` key: keys sorted, no whitespace,
UTF-8 (non-ASCII characters as themselves), no NaN or infinities; numbers as Python's
``json`` writes them. ``prev`` is the previous record's hash in the same ``chain``
(``GENESIS`` for seq 0), so editing, removing or moving one record breaks a link.

A checkpoint record also carries ``mac``: HMAC-SHA256 with the trail's key over the canonical
form without ``hash`` and ``mac``. As it covers ``prev`` (the chain head before it), a
checkpoint vouches for every record before it: whoever rewrites the chain behind it cannot
forge its ``mac`` without the key.

The line a sink stores is the canonical form *with* ``hash`` and a newline (``serialize``).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

__all__ = [
    "CHECKPOINT",
    "CHECKPOINT_REASONS",
    "ENVELOPE",
    "GENESIS",
    "KINDS",
    "VERSION",
    "canonical",
    "checkpoint_mac",
    "envelope",
    "format_time",
    "key_id",
    "make_record",
    "parse_time",
    "place",
    "policy_revision",
    "record_hash",
    "render",
    "Rendered",
    "seal",
    "serialize",
    "sign_checkpoint",
    "verify_checkpoint",
]

VERSION = 1
GENESIS = "0" * 64
CHECKPOINT = "checkpoint"
CHECKPOINT_REASONS = ("start", "interval", "rotate", "stop")

# The record kinds (docs/audit.md): one per event.
KINDS = (
    "session_start",
    "session_end",
    "authentication",
    "request",
    "policy_reload",
    "approval",
    "grant",
    "config_reload",
    "secret_reload",
    "unavailable",
    CHECKPOINT,
)

# Keys every record has, written by the trail's writer; a kind's fields never use them.
ENVELOPE = ("v", "kind", "instance", "chain", "seq", "time", "prev", "hash")
_ENVELOPE_KEYS = frozenset(ENVELOPE)


def canonical(record: Mapping[str, Any], *, without: tuple[str, ...] = ("hash",)) -> bytes:
    """The canonical bytes of ``record`` without the keys in ``without``."""
    body = {k: v for k, v in record.items() if k not in without}
    try:
        # orjson writes the same bytes as the json call below (sorted keys, no whitespace,
        # UTF-8, shortest float repr) ten times faster. What it refuses (integers beyond 64 bits,
        # non-string keys) goes the slow way. It writes NaN and infinities as null: the canonical
        # form has none, and the hash covers what is stored.
        return orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        pass
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def record_hash(record: Mapping[str, Any]) -> str:
    """The SHA-256 (hex) of the record's canonical form without ``hash``."""
    return hashlib.sha256(canonical(record)).hexdigest()


def serialize(record: Mapping[str, Any]) -> bytes:
    """The stored line: the canonical form with ``hash``, then a newline."""
    return canonical(record, without=()) + b"\n"


def seal(record: Mapping[str, Any]) -> tuple[bytes, str]:
    """The stored line of ``record`` (which has no ``hash`` yet) and its hash, with one pass of
    the JSON writer instead of two (``record_hash``, then ``serialize``): the record is cut as
    ``render`` cuts it and ``place`` puts its own ``seq`` and ``prev`` back, byte for byte what
    ``serialize`` writes (a property test compares them). What cannot be cut (no ``hash`` slot,
    a ``seq`` or ``prev`` that is not the writer's int and hex, a value orjson refuses) goes the
    two-pass way."""
    seq, prev = record.get("seq"), record.get("prev")
    pieces = None
    if "hash" not in record and type(seq) is int and type(prev) is str and prev.isascii() and prev.isalnum():
        pieces = _cut(record)
    if pieces is None:
        digest = record_hash(record)
        return serialize({**record, "hash": digest}), digest
    return _place(pieces, record["seq"], record["prev"])  # checked above: an int and a hex string


class Rendered(NamedTuple):
    """A record serialised where it was made (the reactor thread, where its fields are fresh in
    the cache), but for its place in the chain: its canonical line cut around the ``hash``,
    ``prev`` and ``seq`` items, which ``place`` fills in on the writer thread. The writer thus
    reads one bytes object per record, never the record's dicts and lists."""

    chain: str
    session: str | None  # the record's session (the Kafka sink's key)
    pieces: tuple[bytes, bytes, bytes, bytes]


# Markers (random per process) standing for seq, prev and hash while a record is written.
_MARK = secrets.token_hex(16)
_MARK_BYTES = _MARK.encode()
_HASH_MARK, _PREV_MARK, _SEQ_MARK = f"{_MARK}h", f"{_MARK}p", f"{_MARK}s"
_HASH_OPEN, _PREV_OPEN, _SEQ_OPEN = b'"hash":"', b'"prev":"', b'"seq":"'


def render(kind: str, fields: Mapping[str, Any], *, instance: str, chain: str, time: str) -> Rendered | None:
    """``fields`` as the record of ``kind`` in ``chain``, for ``place`` to finish; None when it
    cannot be cut (orjson refuses a value, or the fields hold a marker: never in practice),
    and the writer seals it whole. Raises ValueError (our bug) when ``fields`` uses an envelope
    key."""
    if not _ENVELOPE_KEYS.isdisjoint(fields):
        envelope(kind, fields, instance=instance, chain=chain, seq=0, prev="", time=time)  # raises
    # The envelope and the markers in one dict (this runs once per record on the reactor thread).
    pieces = _cut_marked({"v": VERSION, "kind": kind, "instance": instance, "chain": chain, "time": time, **fields,
                          "seq": _SEQ_MARK, "prev": _PREV_MARK, "hash": _HASH_MARK})
    if pieces is None:
        return None
    session = fields.get("session")
    return Rendered(chain, session if isinstance(session, str) else None, pieces)


def _cut(record: Mapping[str, Any]) -> tuple[bytes, bytes, bytes, bytes] | None:
    """The canonical line of ``record`` (an envelope: "chain" sorts before "hash", "time"
    after "seq") written with markers for seq, prev and hash and cut around them; None when
    orjson refuses a value or the bytes hold a marker elsewhere."""
    return _cut_marked({**record, "seq": _SEQ_MARK, "prev": _PREV_MARK, "hash": _HASH_MARK})


def _cut_marked(record: Mapping[str, Any]) -> tuple[bytes, bytes, bytes, bytes] | None:
    """``_cut`` of a record whose seq, prev and hash are the markers already."""
    try:
        line = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    # One pass: exactly three markers, in the order the sorted keys put them ("hash" < "prev" <
    # "seq"), each the whole value of its item, and the hash item not the first one.
    parts = line.split(_MARK_BYTES)
    if len(parts) != 4:
        return None
    before, after_hash, after_prev, after_seq = parts
    if not (before.endswith(_HASH_OPEN) and after_hash.startswith(b'h",') and after_hash.endswith(_PREV_OPEN)
            and after_prev.startswith(b'p",') and after_prev.endswith(_SEQ_OPEN) and after_seq.startswith(b's"')
            and before[-len(_HASH_OPEN) - 1:-len(_HASH_OPEN)] == b","):
        return None
    return (before[:-len(_HASH_OPEN)], after_hash[2:-len(_PREV_OPEN)], after_prev[2:-len(_SEQ_OPEN)],
            after_seq[2:])


def place(rendered: Rendered, seq: int, prev: str) -> tuple[bytes, str]:
    """The stored line of a rendered record at ``seq`` after ``prev`` (a hex digest), and its
    hash: byte for byte what ``seal`` gives for the same record (a property test compares them)."""
    return _place(rendered.pieces, seq, prev)


def _place(pieces: tuple[bytes, bytes, bytes, bytes], seq: int, prev: str) -> tuple[bytes, str]:
    before, after_hash, after_prev, after_seq = pieces
    rest = b"".join((b'"prev":"', prev.encode(), b'"', after_prev, b'"seq":', str(seq).encode(), after_seq))
    digest = hashlib.sha256(before + after_hash[1:] + rest).hexdigest()  # without the hash item and its comma
    return b"".join((before, b'"hash":"', digest.encode(), b'"', after_hash, rest, b"\n")), digest


# The last whole second formatted, and its text: one (second, text) pair, replaced whole, so a
# caller on another thread sees the old pair or the new one.
_second: list[tuple[int, str]] = [(-1, "")]


def format_time(seconds: float) -> str:
    """Seconds since the epoch as RFC 3339 UTC with microseconds (sorts as text)."""
    whole = int(seconds // 1)
    micros = round((seconds - whole) * 1_000_000)
    if micros >= 1_000_000:  # rounds up into the next second
        whole, micros = whole + 1, micros - 1_000_000
    second, text = _second[0]
    if second != whole:
        # One strftime per second of records, not one per record.
        second, text = whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second[0] = (second, text)
    return f"{text}.{micros:06d}Z"


def parse_time(text: str) -> float:
    """RFC 3339 (``Z`` or an offset; a date alone is midnight UTC) → seconds since the epoch."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def make_record(kind: str, fields: Mapping[str, Any], *, instance: str, chain: str, seq: int, prev: str,
                time: str) -> dict[str, Any]:
    """A chained record: the envelope, then ``fields``, then its hash. Raises ValueError (our
    bug) when ``fields`` uses an envelope key."""
    record = envelope(kind, fields, instance=instance, chain=chain, seq=seq, prev=prev, time=time)
    record["hash"] = record_hash(record)
    return record


def envelope(kind: str, fields: Mapping[str, Any], *, instance: str, chain: str, seq: int, prev: str,
             time: str) -> dict[str, Any]:
    """A chained record without its hash (``seal`` adds it). Raises ValueError (our bug) when
    ``fields`` uses an envelope key."""
    if not _ENVELOPE_KEYS.isdisjoint(fields):
        clash = [k for k in fields if k in ENVELOPE]
        raise ValueError(f"audit record fields may not set envelope keys: {', '.join(sorted(clash))}")
    return {"v": VERSION, "kind": kind, "instance": instance, "chain": chain, "seq": seq, "time": time, "prev": prev,
            **fields}


def key_id(key: bytes) -> str:
    """A short public name of an HMAC key (the first 8 bytes of its SHA-256, hex): tells a
    verifier holding several keys which one signed, and reveals nothing of the key."""
    return hashlib.sha256(key).hexdigest()[:16]


def checkpoint_mac(record: Mapping[str, Any], key: bytes) -> str:
    """HMAC-SHA256 (hex) of the checkpoint's canonical form without ``hash`` and ``mac``."""
    return hmac.new(key, canonical(record, without=("hash", "mac")), hashlib.sha256).hexdigest()


def sign_checkpoint(fields: Mapping[str, Any], key: bytes, *, instance: str, chain: str, seq: int, prev: str,
                    time: str) -> dict[str, Any]:
    """A checkpoint record signing the chain head ``prev`` (at ``seq - 1``) with ``key``."""
    record: dict[str, Any] = {"v": VERSION, "kind": CHECKPOINT, "instance": instance, "chain": chain, "seq": seq,
                              "time": time, "prev": prev, **fields, "key_id": key_id(key)}
    record["mac"] = checkpoint_mac(record, key)
    record["hash"] = record_hash(record)
    return record


def verify_checkpoint(record: Mapping[str, Any], keys: Mapping[str, bytes]) -> str | None:
    """None when the checkpoint's ``mac`` is right for the key its ``key_id`` names, else what
    is wrong. ``keys`` maps key ids to keys."""
    kid, mac = record.get("key_id"), record.get("mac")
    if not isinstance(mac, str) or not isinstance(kid, str):
        return "checkpoint without key_id or mac"
    key = keys.get(kid)
    if key is None:
        return f"checkpoint signed with key {kid}, which was not given"
    if not hmac.compare_digest(checkpoint_mac(record, key), mac):
        return "checkpoint signature does not verify (forged or altered)"
    return None


def policy_revision(modules: Mapping[str, str | bytes], data: Any = None) -> str:
    """The digest of the policies and data in force: ``sha256:<hex>`` over the canonical JSON
    of each module's SHA-256 by name and the data document. The same on every instance that
    loads the same files, whatever their order or path prefix."""
    digests = {name: hashlib.sha256(src.encode() if isinstance(src, str) else src).hexdigest()
               for name, src in modules.items()}
    body = json.dumps({"modules": digests, "data": data}, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False, allow_nan=False, default=str).encode()
    return "sha256:" + hashlib.sha256(body).hexdigest()
