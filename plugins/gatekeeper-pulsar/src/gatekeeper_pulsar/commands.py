"""Reading and building BaseCommands: the protobuf half of the codec.

Parsing uses the generated :mod:`gatekeeper_pulsar.wire_pb2`, which declares only what
Gatekeeper reads; every other field survives a parse and serialize as an unknown field.
Commands Gatekeeper answers itself are built here, each the shape the broker would send.
"""

from __future__ import annotations

import google_crc32c
from google.protobuf.message import DecodeError

from gatekeeper_pulsar import wire_pb2 as wire
from gatekeeper_pulsar.framing import FrameError, encode_frame

__all__ = [
    "Type",
    "auth_error_frame",
    "close_consumer_frame",
    "command_name",
    "error_frame",
    "lookup_failed_frame",
    "parse_command",
    "partitioned_failed_frame",
    "probe_frame",
    "request_id_of",
    "schema_error_frame",
    "tc_connect_error_frame",
    "topics_hash",
    "txn_error_frame",
    "send_error_frame",
    "serialize",
]

Type = wire.BaseCommand
AUTHORIZATION_ERROR = wire.AuthorizationError
AUTHENTICATION_ERROR = wire.AuthenticationError
SERVICE_NOT_READY = wire.ServiceNotReady
TOPIC_NOT_FOUND = wire.TopicNotFound
NO_REQUEST_ID = (1 << 64) - 1  # the request id of an error answering no request (CONNECT)


def parse_command(data: bytes) -> wire.BaseCommand:
    """A BaseCommand from its bytes. Required fields are not checked here (a command of a type
    Gatekeeper does not know has no ``type`` it can read); :func:`command_name` says so."""
    cmd = wire.BaseCommand()
    try:
        cmd.MergeFromString(data)
    except DecodeError as e:
        raise FrameError(f"the command is not a protobuf BaseCommand: {e}") from e
    return cmd


def command_name(cmd: wire.BaseCommand) -> str:
    """``LOOKUP``, ``SEND`` …, or ``UNKNOWN`` for a type this codec does not know."""
    if not cmd.HasField("type"):
        return "UNKNOWN"
    return str(wire.BaseCommand.Type.Name(cmd.type))


def serialize(cmd: wire.BaseCommand) -> bytes:
    return cmd.SerializePartialToString()


def _frame(cmd: wire.BaseCommand) -> bytes:
    return encode_frame(serialize(cmd))


def error_frame(request_id: int, error: int, message: str) -> bytes:
    """ERROR: the broker's answer to a refused PRODUCER, SUBSCRIBE or other request."""
    cmd = wire.BaseCommand(type=wire.BaseCommand.ERROR)
    cmd.error.request_id = request_id
    cmd.error.error = error  # type: ignore[assignment]
    cmd.error.message = message
    return _frame(cmd)


def auth_error_frame(message: str) -> bytes:
    """The answer to a CONNECT whose credentials are refused (then the connection closes)."""
    return error_frame(NO_REQUEST_ID, AUTHENTICATION_ERROR, message)


def send_error_frame(producer_id: int, sequence_id: int, error: int, message: str) -> bytes:
    cmd = wire.BaseCommand(type=wire.BaseCommand.SEND_ERROR)
    cmd.send_error.producer_id = producer_id
    cmd.send_error.sequence_id = sequence_id
    cmd.send_error.error = error  # type: ignore[assignment]
    cmd.send_error.message = message
    return _frame(cmd)


def close_consumer_frame(consumer_id: int, request_id: int) -> bytes:
    """CLOSE_CONSUMER: from the client's side a request (the broker answers SUCCESS); towards the
    client the broker's notice that the consumer was closed (the client subscribes again)."""
    cmd = wire.BaseCommand(type=wire.BaseCommand.CLOSE_CONSUMER)
    cmd.close_consumer.consumer_id = consumer_id
    cmd.close_consumer.request_id = request_id
    return _frame(cmd)


def lookup_failed_frame(request_id: int, error: int, message: str) -> bytes:
    cmd = wire.BaseCommand(type=wire.BaseCommand.LOOKUP_RESPONSE)
    r = cmd.lookupTopicResponse
    r.request_id = request_id
    r.response = wire.CommandLookupTopicResponse.Failed
    r.error = error  # type: ignore[assignment]
    r.message = message
    return _frame(cmd)


def partitioned_failed_frame(request_id: int, error: int, message: str) -> bytes:
    cmd = wire.BaseCommand(type=wire.BaseCommand.PARTITIONED_METADATA_RESPONSE)
    r = cmd.partitionMetadataResponse
    r.request_id = request_id
    r.response = wire.CommandPartitionedTopicMetadataResponse.Failed
    r.error = error  # type: ignore[assignment]
    r.message = message
    return _frame(cmd)


def probe_frame(request_id: int, topic: str) -> bytes:
    """Gatekeeper's own PARTITIONED_METADATA that asks whether ``topic`` exists without letting the
    broker create its metadata (``metadata_auto_creation_enabled: false``): Success, or Failed
    TopicNotFound."""
    cmd = wire.BaseCommand(type=wire.BaseCommand.PARTITIONED_METADATA)
    cmd.partitionMetadata.topic = topic
    cmd.partitionMetadata.request_id = request_id
    cmd.partitionMetadata.metadata_auto_creation_enabled = False
    return _frame(cmd)


def schema_error_frame(get_or_create: bool, request_id: int, error: int, message: str) -> bytes:
    """GET_SCHEMA_RESPONSE or GET_OR_CREATE_SCHEMA_RESPONSE with an error, as the broker answers."""
    if get_or_create:
        cmd = wire.BaseCommand(type=wire.BaseCommand.GET_OR_CREATE_SCHEMA_RESPONSE)
        r = cmd.getOrCreateSchemaResponse
    else:
        cmd = wire.BaseCommand(type=wire.BaseCommand.GET_SCHEMA_RESPONSE)
        r = cmd.getSchemaResponse  # type: ignore[assignment]
    r.request_id = request_id
    r.error_code = error  # type: ignore[assignment]
    r.error_message = message
    return _frame(cmd)


_TXN_RESPONSES: dict[int, tuple[int, str]] = {
    wire.BaseCommand.NEW_TXN: (wire.BaseCommand.NEW_TXN_RESPONSE, "newTxnResponse"),
    wire.BaseCommand.ADD_PARTITION_TO_TXN: (wire.BaseCommand.ADD_PARTITION_TO_TXN_RESPONSE, "addPartitionToTxnResponse"),
    wire.BaseCommand.ADD_SUBSCRIPTION_TO_TXN: (wire.BaseCommand.ADD_SUBSCRIPTION_TO_TXN_RESPONSE,
                                               "addSubscriptionToTxnResponse"),
    wire.BaseCommand.END_TXN: (wire.BaseCommand.END_TXN_RESPONSE, "endTxnResponse"),
}


def txn_error_frame(request_type: int, request_id: int, txn: tuple[int, int], error: int, message: str) -> bytes:
    """The transaction command's own response (NEW_TXN_RESPONSE …) with an error; ``txn`` is
    (most bits, least bits) of the transaction id the request named."""
    answer_type, field = _TXN_RESPONSES[request_type]
    cmd = wire.BaseCommand(type=answer_type)  # type: ignore[arg-type]
    r = getattr(cmd, field)
    r.request_id = request_id
    r.txnid_most_bits, r.txnid_least_bits = txn
    r.error = error
    r.message = message
    return _frame(cmd)


def tc_connect_error_frame(request_id: int, error: int, message: str) -> bytes:
    cmd = wire.BaseCommand(type=wire.BaseCommand.TC_CLIENT_CONNECT_RESPONSE)
    cmd.tcClientConnectResponse.request_id = request_id
    cmd.tcClientConnectResponse.error = error  # type: ignore[assignment]
    cmd.tcClientConnectResponse.message = message
    return _frame(cmd)


def topics_hash(topics: list[str] | set[str]) -> str:
    """The broker's hash of a topic list (``TopicList.calculateHash``): CRC32C of the sorted names
    joined by commas, as Guava prints a 32-bit hash (its bytes little-endian, in hex)."""
    crc = google_crc32c.value(",".join(sorted(topics)).encode("utf-8"))
    return crc.to_bytes(4, "little").hex()


def request_id_of(cmd: wire.BaseCommand) -> int | None:
    """The request id a client's command carries (in whichever of its sub-commands is set), or
    None. Unknown fields are not read: a command type Gatekeeper does not declare carries none
    that the broker would answer with one of Gatekeeper's ids."""
    for field, value in cmd.ListFields():
        if field.message_type is not None:
            rid = getattr(value, "request_id", None)
            if isinstance(rid, int) and value.HasField("request_id"):
                return rid
    return None
