"""Kafka request/response codec built on kafka-python's generated message classes.

kafka-python ships Kafka's JSON message schemas as ``ApiMessage`` classes but no server-side
request decoder. This module builds the api-key → (request, response) class table from those
classes, parses request and response headers (v0–v2, flexible tagged fields) by hand, and
decodes/encodes bodies with the generated classes. Bytes in, values out: no I/O.
"""

from __future__ import annotations

import importlib
import pkgutil
import struct
from collections.abc import Iterator
from typing import Any

import attrs
import kafka.protocol as _kp
import kafka.protocol.schemas.fields.struct as _kp_struct
from kafka.protocol.api_message import ApiMessage
from kafka.protocol.schemas.fields.codegen import CodegenContext

__all__ = [
    "API_TABLE",
    "ApiSpec",
    "CodecError",
    "RequestHeader",
    "UnsupportedApi",
    "decode_request",
    "decode_response_body",
    "encode_body",
    "parse_request_header",
    "response_header_size",
]

class _JavaNulls(CodegenContext):  # type: ignore[misc]
    """kafka-python's generated decoders read an array whose count is -1 as null and any other
    negative count as empty, and a nullable struct as null only when its marker byte is 0xff.
    Kafka's own readers take any negative count, and any negative marker, as null (or refuse
    it where the field may not be null). Read as empty, a Metadata v1-8 request of count -2
    would be "no topics" to the policy and "every topic" to the broker: so the decoders are
    generated with Kafka's reading."""

    def emit(self, indent: str, line: str) -> None:
        if line.startswith("if _n") and line.endswith(" == -1:"):  # an array's count
            line = line[:-len(" == -1:")] + " < 0:"
        elif line == "if data[pos] == 0xff:":  # a nullable struct's marker
            line = "if data[pos] >= 0x80:"
        super().emit(indent, line)


_kp_struct.CodegenContext = _JavaNulls

# APIs that only brokers and controllers send to each other; never accepted from clients.
_INTER_BROKER = frozenset({4, 5, 6, 7, 27, 52, 53, 54, 56, 58, 59, 62, 63, 64, 67, 70, 73})


class CodecError(Exception):
    """The client's bytes do not decode as the Kafka request they claim to be."""


class UnsupportedApi(CodecError):
    """A request for an API key or version Gatekeeper cannot inspect."""


@attrs.frozen
class ApiSpec:
    key: int
    name: str
    request: Any
    response: Any
    min_version: int
    max_version: int
    # The versions with flexible encodings (tagged fields, compact lengths), asked of the schema
    # once: every request header and response header reads it.
    flexible_versions: frozenset[int] = attrs.field(init=False)

    @flexible_versions.default
    def _flexible_versions(self) -> frozenset[int]:
        return frozenset(v for v in range(self.min_version, self.max_version + 1) if self.request.flexible_version_q(v))

    def flexible(self, version: int) -> bool:
        if self.min_version <= version <= self.max_version:
            return version in self.flexible_versions
        return bool(self.request.flexible_version_q(version))

    def request_header_version(self, version: int) -> int:
        if self.key == 7 and version == 0:  # ControlledShutdown v0 has no client id
            return 0
        return 2 if self.flexible(version) else 1

    def response_header_version(self, version: int) -> int:
        if self.key == 18:  # ApiVersions responses always use header v0 (KIP-511)
            return 0
        return 1 if self.flexible(version) else 0


def _subclasses(cls: Any) -> Iterator[Any]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def _build_table() -> dict[int, ApiSpec]:
    for mod in pkgutil.walk_packages(_kp.__path__, _kp.__name__ + "."):
        if ".old" in mod.name or mod.name.endswith(("generate_stubs", "__main__")):
            continue
        importlib.import_module(mod.name)
    # Kafka 4 APIs kafka-python does not define: Gatekeeper's own definitions.
    importlib.import_module("gatekeeper.kafka.definitions")
    requests: dict[int, Any] = {}
    responses: dict[int, Any] = {}
    for cls in _subclasses(ApiMessage):
        if getattr(cls, "_class_version", None) is not None or getattr(cls, "_json", None) is None:
            continue
        (requests if cls.is_request() else responses)[cls.API_KEY] = cls
    table = {}
    for key, req in requests.items():
        resp = responses.get(key)
        if resp is None or key in _INTER_BROKER:
            continue
        lo = max(req.valid_versions[0], resp.valid_versions[0])
        hi = min(req.valid_versions[1], resp.valid_versions[1])
        if lo <= hi:
            name = req.__name__.removesuffix("Request")
            table[key] = ApiSpec(key, name, req, resp, lo, hi)
    return table


API_TABLE: dict[int, ApiSpec] = _build_table()


def _check_java_nulls() -> None:
    """Refuse to run if the decoders do not read negative counts as Kafka does (a kafka-python
    whose code generation changed): every request would be at risk of being read otherwise."""
    spec = API_TABLE[3]
    body, _end = spec.request._struct.compiled_decode_from(4, data_class=spec.request[None])(
        memoryview(b"\xff\xff\xff\xfe\x00"), 0)  # topics: count -2; allow_auto_topic_creation
    if body.topics is not None:
        raise ImportError("kafka-python's decoders read a negative array count as empty: Gatekeeper cannot run on this version")


_check_java_nulls()

if not __debug__:  # pragma: no cover - the interpreter was started with -O
    raise ImportError("Gatekeeper does not run under python -O: kafka-python refuses some malformed requests (unknown tags "
                      "inside a tagged struct) only by assertion, and -O removes assertions")


@attrs.frozen
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    size: int  # bytes of the header within the frame; the body starts here


_HDR = struct.Struct(">hhi")
_I16 = struct.Struct(">h")


def _read_uvarint(buf: bytes | memoryview, pos: int, where: str = "request header") -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise CodecError(f"truncated varint in {where}")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 28:
            raise CodecError(f"varint too long in {where}")


def peek_ids(frame: bytes) -> tuple[int, int, int] | None:
    """(api_key, api_version, correlation_id) of a frame, or None if it is too short."""
    if len(frame) < 8:
        return None
    return _HDR.unpack_from(frame, 0)  # type: ignore[return-value]


def parse_request_header(frame: bytes) -> tuple[RequestHeader, ApiSpec]:
    """Parse the request header; UnsupportedApi for keys/versions we cannot inspect."""
    ids = peek_ids(frame)
    if ids is None:
        raise CodecError(f"request of {len(frame)} bytes is shorter than a request header")
    api_key, api_version, correlation_id = ids
    spec = API_TABLE.get(api_key)
    if spec is None:
        raise UnsupportedApi(f"API key {api_key} is not one Gatekeeper can inspect")
    if not spec.min_version <= api_version <= spec.max_version:
        raise UnsupportedApi(
            f"{spec.name} v{api_version} is outside the versions Gatekeeper can inspect "
            f"(v{spec.min_version}-v{spec.max_version})"
        )
    pos = 8
    client_id = None
    hv = spec.request_header_version(api_version)
    if hv >= 1:
        if len(frame) < pos + 2:
            raise CodecError("truncated client id in request header")
        (n,) = _I16.unpack_from(frame, pos)
        pos += 2
        if n >= 0:
            if len(frame) < pos + n:
                raise CodecError("truncated client id in request header")
            client_id = frame[pos : pos + n].decode("utf-8", "replace")
            pos += n
    if hv >= 2:
        count, pos = _read_uvarint(frame, pos)
        for _ in range(count):
            _tag, pos = _read_uvarint(frame, pos)
            size, pos = _read_uvarint(frame, pos)
            pos += size
        if pos > len(frame):
            raise CodecError("truncated tagged fields in request header")
    return RequestHeader(api_key, api_version, correlation_id, client_id, pos), spec


def decode_request(frame: bytes) -> tuple[RequestHeader, ApiSpec, Any, int]:
    """Header, decoded body and the count of trailing bytes after the body.

    Trailing bytes are tolerated as the broker tolerates them (it parses the same schema and
    ignores what follows; librdkafka sends some): the caller decides what to do with the count.
    """
    header, spec = parse_request_header(frame)
    body, end = _decode_body(spec.request, spec, frame, header.size, header.api_version)
    if end > len(frame):  # a length prefix inside the body points past the frame
        raise CodecError(f"{spec.name} v{header.api_version} request is truncated ({end - len(frame)} bytes short)")
    return header, spec, body, len(frame) - end


def _decode_body(cls: Any, spec: ApiSpec, frame: bytes, start: int, version: int) -> tuple[Any, int]:
    flexible = cls.flexible_version_q(version)
    decode = cls._struct.compiled_decode_from(
        version, compact=flexible, tagged=flexible, data_class=cls[None]
    )
    try:
        body, end = decode(memoryview(frame), start)
    except Exception as e:  # kafka-python raises assorted errors on bad bytes
        raise CodecError(f"{spec.name} v{version} body does not decode: {type(e).__name__}: {e}") from e
    where = _null_field(body, _null_checks(cls._struct, version))
    if where is not None:
        raise CodecError(f"{spec.name} v{version} body has a null {where}, a field that is never null at this version")
    body._version = version
    body._header = None  # the fast decoder bypasses ApiMessage.__init__
    body._min_version = body._max_version = None
    return body, end


# What the decoder does not check: kafka-python reads a length of -1 as None whatever the
# schema says, where Kafka's own readers refuse a null in a field that is not nullable at the
# version. Everything downstream (operations, error responses, rewrites, the encoder) relies
# on the schema, so such a body is refused here, as the broker refuses it.
_NULLABLE_TYPES = frozenset({"string", "bytes", "records"})
_NullChecks = tuple[tuple[str, str, bool, Any], ...]  # (attribute, kind, nullable, nested checks)
# Keyed by the struct's id, and holding the struct itself: a struct that was freed cannot hand its
# id, and so its checks, to another one.
_NULL_CHECKS: dict[tuple[int, int], tuple[Any, _NullChecks]] = {}


def _null_checks(struct: Any, version: int) -> _NullChecks:
    """The fields of ``struct`` at ``version`` that may decode as None, and how to check them."""
    key = (id(struct), version)
    cached = _NULL_CHECKS.get(key)
    if cached is not None and cached[0] is struct:
        return cached[1]
    out: list[tuple[str, str, bool, Any]] = []
    for f in struct._fields:
        if not f.for_version_q(version) or f.tagged_field_q(version):
            continue
        nullable = f.nullable_for_version_q(version)
        if f.is_struct_array():
            out.append((f.name, "structs", nullable, _null_checks(f.array_of, version)))
        elif f.is_array():
            out.append((f.name, "array", nullable, f.array_of.type_str in _NULLABLE_TYPES))
        elif f.is_struct():
            out.append((f.name, "struct", nullable, _null_checks(f, version)))
        elif f.type_str in _NULLABLE_TYPES and not nullable:
            out.append((f.name, "value", False, None))
    checks = tuple(c for c in out if not c[2] or (c[1] in ("structs", "struct") and c[3]) or (c[1] == "array" and c[3]))
    _NULL_CHECKS[key] = (struct, checks)
    return checks


def _null_field(obj: Any, checks: _NullChecks) -> str | None:
    """The path of the first field of ``obj`` that is None where ``checks`` say it must not be."""
    for name, kind, nullable, nested in checks:
        value = getattr(obj, name, None)
        if value is None:
            if not nullable:
                return name
            continue
        if kind == "structs":
            if nested:
                for i, item in enumerate(value):
                    where = _null_field(item, nested)
                    if where is not None:
                        return f"{name}[{i}].{where}"
        elif kind == "array":
            if nested and any(item is None for item in value):
                return f"{name}[]"
        elif kind == "struct" and nested:
            where = _null_field(value, nested)
            if where is not None:
                return f"{name}.{where}"
    return None


def response_header_size(frame: bytes | memoryview, spec: ApiSpec, version: int) -> int:
    """Bytes of the response header (correlation id and, if flexible, tagged fields)."""
    if spec.response_header_version(version) == 0:
        return 4
    count, pos = _read_uvarint(frame, 4, "response header")
    for _ in range(count):
        _tag, pos = _read_uvarint(frame, pos, "response header")
        size, pos = _read_uvarint(frame, pos, "response header")
        pos += size
    return pos


def decode_response_body(frame: bytes, spec: ApiSpec, version: int) -> tuple[bytes, Any]:
    """(header bytes, decoded body) of a response frame from the broker."""
    start = response_header_size(frame, spec, version)
    body, _end = _decode_body(spec.response, spec, frame, start, version)
    return frame[:start], body


def encode_body(message: Any, version: int) -> bytes:
    """Encode a request or response body (no header) at ``version``."""
    return bytes(message.encode(version=version))
