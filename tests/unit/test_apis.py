"""The per-API enforcement units: one per API Gatekeeper inspects, each consistent with the
codec's schemas, and the versions offered to clients capped where the unit says so."""

from __future__ import annotations

import pytest

from gatekeeper.kafka.apis import UNITS, ApiKey
from gatekeeper.kafka.cluster import ClusterView
from gatekeeper.kafka.codec import API_TABLE, UnsupportedApi
from gatekeeper.kafka.messages import INSPECTABLE, KafkaCodec
from tests.unit.samples import req


def test_every_unit_is_an_api_the_codec_knows_under_the_same_name() -> None:
    for key, unit in UNITS.items():
        assert unit.key == key and unit.name == API_TABLE[key].name


def test_only_apis_with_a_unit_are_inspectable_and_offered() -> None:
    assert set(INSPECTABLE) == set(UNITS)
    assert INSPECTABLE[ApiKey.ADD_PARTITIONS_TO_TXN] == (API_TABLE[24].min_version, 3)


def test_a_version_above_the_units_cap_is_refused() -> None:
    T = API_TABLE[24].request
    m = req(24, 4, transactions=[T.AddPartitionsToTxnTransaction(transactional_id="t", producer_id=1, producer_epoch=0,
                                                                 verify_only=True, topics=[])])
    m.with_header(correlation_id=1, client_id="c")
    with pytest.raises(UnsupportedApi, match="outside the versions Gatekeeper inspects"):
        KafkaCodec(ClusterView(3)).decode(bytes(m.encode(version=4, header=True)))


def test_negotiation_apis_are_the_three_of_the_handshake() -> None:
    assert {k for k, u in UNITS.items() if u.negotiation} == {ApiKey.SASL_HANDSHAKE, ApiKey.API_VERSIONS, ApiKey.SASL_AUTHENTICATE}
