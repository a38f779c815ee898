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
from typing import Any

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
    "policy_revision",
    "record_hash",
    "seal",
    "seal_record",
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
    the JSON writer instead of two (``record_hash``, then ``serialize``): byte for byte what
    ``serialize`` writes (a property test compares them). What cannot be sealed in one pass (a
    ``hash`` already there, a value orjson refuses) goes the two-pass way."""
    if "hash" not in record:
        sealed = _seal_marked({**record, "hash": _HASH_MARK})
        if sealed is not None:
            return sealed
    return _seal_twice(record)


def seal_record(kind: str, fields: Mapping[str, Any], *, instance: str, chain: str, seq: int, prev: str,
                time: str) -> tuple[bytes, str]:
    """``seal(envelope(...))`` with the envelope and the hash's marker put in one dict (this runs
    once per record on the reactor thread). Raises ValueError (our bug) when ``fields`` uses an
    envelope key."""
    if not _ENVELOPE_KEYS.isdisjoint(fields):
        envelope(kind, fields, instance=instance, chain=chain, seq=seq, prev=prev, time=time)  # raises
    sealed = _seal_marked({"v": VERSION, "kind": kind, "instance": instance, "chain": chain, "seq": seq, "time": time,
                           "prev": prev, **fields, "hash": _HASH_MARK})
    if sealed is not None:
        return sealed
    return _seal_twice(envelope(kind, fields, instance=instance, chain=chain, seq=seq, prev=prev, time=time))


def _seal_twice(record: Mapping[str, Any]) -> tuple[bytes, str]:
    """The two-pass definition: the hash of the canonical form, then the line with it."""
    digest = record_hash(record)
    return serialize({**record, "hash": digest}), digest


# A marker (random per process) standing for the hash while a record is written: the line is
# written once with it, hashed without its item and stored with the hash in its place.
_HASH_MARK = secrets.token_hex(32)  # as long as a hash
_MARK_BYTES = _HASH_MARK.encode()
_HASH_ITEM_OPEN = b',"hash":"'


def _seal_marked(record: Mapping[str, Any]) -> tuple[bytes, str] | None:
    """The stored line and hash of ``record``, whose ``hash`` is the marker; None when orjson
    refuses a value, or the marker is not exactly once the whole value of a ``hash`` item with
    items before and after it (an envelope's always has: "chain" sorts before "hash", "v" after)."""
    try:
        line = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return None
    at = line.find(_MARK_BYTES)
    end = at + len(_MARK_BYTES)
    if (at < len(_HASH_ITEM_OPEN) or line.find(_MARK_BYTES, end) != -1
            or line[at - len(_HASH_ITEM_OPEN):at] != _HASH_ITEM_OPEN or line[end:end + 2] != b'",'):
        return None
    view = memoryview(line)
    # The canonical form has no hash item: the line without ``,"hash":"<marker>"``.
    h = hashlib.sha256(view[:at - len(_HASH_ITEM_OPEN)])
    h.update(view[end + 1:])
    digest = h.hexdigest()
    return b"".join((view[:at], digest.encode(), view[end:], b"\n")), digest


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
