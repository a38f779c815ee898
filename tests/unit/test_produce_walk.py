"""A Produce request is walked, not decoded: what the rest of Gatekeeper sees of that.

The walk itself is held to the decoder in ``test_walks.py``; here, the request it makes: its
body decoded only when asked for, once for every copy, and a body that fails to decode then
closing the connection rather than escaping.
"""

from __future__ import annotations

import attrs
import pytest

from gatekeeper.kafka import request as request_module
from gatekeeper.kafka.apis import UNITS
from gatekeeper.kafka.apis.base import ApiKey
from gatekeeper.kafka.codec import CodecError
from gatekeeper.kafka.messages import KafkaCodec
from gatekeeper.kafka.walks import ProduceRequestView
from tests.unit.test_connection import ALLOW, DENY, answer, produce, ready


def _decoded(frame: bytes) -> object:
    return KafkaCodec(None).decode(frame[4:])  # type: ignore[arg-type]


def test_the_body_is_decoded_only_when_asked_for_and_once_for_every_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = request_module.decode_request
    monkeypatch.setattr(request_module, "decode_request", lambda frame: calls.append(1) or real(frame))
    request = _decoded(produce(1, "orders", "payments"))
    assert isinstance(request.view, ProduceRequestView)  # type: ignore[attr-defined]
    assert [t.name for t in request.fields.topic_data] == ["orders", "payments"]  # type: ignore[attr-defined]
    assert calls == []
    copy = attrs.evolve(request, normalized=True)  # type: ignore[misc]
    copy.body.topic_data = copy.body.topic_data[:1]  # a change made through the copy ...
    assert calls == [1]
    assert request.body is copy.body  # type: ignore[attr-defined]
    # ... is what is forwarded, and the client's request is still read as it came.
    assert b"orders" in copy.outgoing and b"payments" not in copy.outgoing
    assert b"payments" in request.frame  # type: ignore[attr-defined]
    assert [t.name for t in copy.fields.topic_data] == ["orders", "payments"]


def test_produce_has_no_normalize_for_the_walk_to_skip() -> None:
    assert UNITS[ApiKey.PRODUCE].normalize is None


def test_a_body_that_fails_to_decode_after_the_decision_closes_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    core, io, adapter = ready()
    core.client_data(produce(4, "orders", "payments"))

    def refuse(frame: bytes) -> object:
        raise CodecError("Produce v9 body does not decode: made up")

    monkeypatch.setattr(request_module, "decode_request", refuse)
    answer(core, io, ALLOW, DENY)  # a partial deny re-encodes the body: the first time it is needed
    assert io.upstream == [] and io.client == []
    assert io.closed == [False]
    assert adapter.settings.metrics.get("gatekeeper_rejected_total", reason="malformed") == 1


def test_an_allowed_produce_goes_as_the_clients_bytes_without_a_decode(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(request_module, "decode_request", lambda frame: pytest.fail("decoded"))
    core, io, _ = ready()
    wire = produce(1, "orders", "payments")
    core.client_data(wire)
    answer(core, io, ALLOW, ALLOW)
    assert io.upstream == [wire]
