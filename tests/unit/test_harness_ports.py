"""The test harness's port picking: ports picked one by one for one gateway (its bind, its
broker_ports range, its admin port) never collide. A collision once failed a whole module of
Pulsar tests ("broker_ports: port … is already used by listeners[0].bind")."""

from __future__ import annotations

from harness import ports
from harness.ports import free_port, free_port_range, free_ports, given


def test_no_port_is_handed_out_twice_by_singles_lists_or_ranges() -> None:
    ports = [free_port() for _ in range(200)] + free_ports(20)
    for _ in range(50):
        ports += free_port_range(3)
    assert len(ports) == len(set(ports))


def test_a_range_holding_a_port_handed_out_is_refused_and_marks_nothing() -> None:
    port = free_port()
    before = set(ports._GIVEN)
    assert not given([port + 1, port])
    assert before == ports._GIVEN
