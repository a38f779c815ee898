from __future__ import annotations

import pytest

from gatekeeper.values import HostPort, parse_duration


@pytest.mark.parametrize(("text", "seconds"), [("250ms", 0.25), ("5s", 5.0), ("1.5s", 1.5), ("2m", 120.0), ("1h", 3600.0)])
def test_durations_in_seconds(text, seconds) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


def test_a_duration_without_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="not a duration: '5'"):
        parse_duration("5")


def test_hostport_round_trips() -> None:
    hp = HostPort.parse("broker-1.example:9092")
    assert hp == HostPort("broker-1.example", 9092)
    assert str(hp) == "broker-1.example:9092"
