"""The Pulsar connection core's identity and TLS paths (plugins/gatekeeper-pulsar), sans I/O:
the client's token refreshed through AUTH_CHALLENGE (or the session ended at expiry), the
original_principal option, lookup answers on TLS listeners and upstreams, and the broker token
re-read by the adapter's reload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
from gatekeeper_pulsar import commands as c
from gatekeeper_pulsar import wire_pb2 as wire
from gatekeeper_pulsar.adapter import PulsarAdapter
from gatekeeper_pulsar.brokers import BrokerMap
from gatekeeper_pulsar.client_token import REFRESH_CHALLENGE
from gatekeeper_pulsar.connection import PulsarConnection
from gatekeeper_pulsar.framing import FrameDecoder, encode_frame
from gatekeeper_pulsar.settings import ListenerSettings, PulsarSettings
from twisted.internet.task import Clock

from gatekeeper.api import Principal, UpstreamTarget
from gatekeeper.metrics import Metrics
from gatekeeper.values import HostPort

T = wire.BaseCommand
BROKER = HostPort("10.0.0.5", 6650)
BROKER_TLS = HostPort("10.0.0.5", 6651)


@attrs.frozen
class _Token:
    principal: Principal
    expires_at: float


class FakeIdentity:
    """Tokens are ``sub:expires_at``; ``bad`` is refused as the JWT validator would."""

    def validate(self, token: str, mechanism: str) -> _Token:
        sub, _, exp = token.partition(":")
        if sub == "bad":
            raise ValueError("signature verification failed")
        return _Token(Principal(sub, issuer="https://idp.example", groups=(f"{sub}-{exp}",), mechanism="token"),
                      float(exp))


class FakeIO:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.client = FrameDecoder()
        self.upstream = FrameDecoder()
        self.target: Any = None
        self.closed = False

    def to_client(self, data: list[bytes]) -> None:
        self.client.receive_data(b"".join(data))

    def to_upstream(self, data: list[bytes]) -> None:
        self.upstream.receive_data(b"".join(data))

    def connect_upstream(self, target: Any) -> None:
        self.target = target

    def close(self, abort_upstream: bool = False) -> None:
        self.closed = True

    def call_later(self, seconds: float, fn: Any) -> Any:
        return self.clock.callLater(seconds, fn)

    def decide(self, token: int, inputs: list[dict[str, Any]]) -> None:
        pass

    def pause_client(self) -> None:
        pass

    def resume_client(self) -> None:
        pass

    def sent(self, decoder: FrameDecoder) -> list[wire.BaseCommand]:
        out = []
        while (frame := decoder.next_frame()) is not None:
            out.append(c.parse_command(frame.command))
        return out


def _connection(*, tls: bool = False, upstream_tls: Any = None, original_principal: bool = False,
                refresh_before: float = 30.0, brokers: tuple[HostPort, ...] = (BROKER,),
                token: str | None = "gatekeeper-token") -> tuple[PulsarConnection, FakeIO, Clock]:
    clock = Clock()
    clock.advance(1000)
    io = FakeIO(clock)
    settings = PulsarSettings(clock=clock.seconds, identity=FakeIdentity(), metrics=Metrics(), authentication_timeout=10,
                              inputs_decoded=lambda inputs: None, grants_for=lambda p, now: [],
                              upstream_token=lambda: token)
    listener = ListenerSettings("pulsar", BrokerMap.build(brokers, "gk.example", [9001], 6650), brokers, True,
                                refresh_before=refresh_before, original_principal=original_principal, tls=tls,
                                upstream_tls=upstream_tls)
    conn = PulsarConnection(settings, listener, 0, io)  # type: ignore[arg-type]
    conn.start("192.0.2.7", 40000)
    return conn, io, clock


def _frame(cmd: wire.BaseCommand) -> bytes:
    return encode_frame(c.serialize(cmd))


def _connect(token: str, refresh: bool = True) -> bytes:
    cmd = wire.BaseCommand(type=T.CONNECT)
    cmd.connect.client_version = "test"
    cmd.connect.protocol_version = 21
    cmd.connect.auth_method_name = "token"
    cmd.connect.auth_data = token.encode()
    cmd.connect.original_principal = "admin"  # a client's claim: never forwarded
    if refresh:
        cmd.connect.feature_flags.supports_auth_refresh = True
    return _frame(cmd)


def _connected(conn: PulsarConnection) -> None:
    cmd = wire.BaseCommand(type=T.CONNECTED)
    cmd.connected.server_version = "broker"
    conn.upstream_data(_frame(cmd))


def _auth_response(token: str, method: str = "token") -> bytes:
    cmd = wire.BaseCommand(type=T.AUTH_RESPONSE)
    cmd.authResponse.response.auth_method_name = method
    cmd.authResponse.response.auth_data = token.encode()
    return _frame(cmd)




def _start(lifetime: float = 100, refresh: bool = True, **kw: Any) -> tuple[PulsarConnection, FakeIO, Clock]:
    conn, io, clock = _connection(**kw)
    conn.client_data(_connect(f"svc-orders:{clock.seconds() + lifetime}", refresh))
    conn.upstream_connected()
    _connected(conn)
    assert [x.type for x in io.sent(io.client)] == [T.CONNECTED]
    return conn, io, clock


# -- token refresh ------------------------------------------------------------------------------


def test_the_client_is_challenged_ahead_of_expiry_and_a_fresh_token_extends_the_session() -> None:
    conn, io, clock = _start(lifetime=100, refresh_before=30)
    clock.advance(69)
    assert io.sent(io.client) == []
    clock.advance(1)  # 30 s before the expiry
    [challenge] = io.sent(io.client)
    assert challenge.type == T.AUTH_CHALLENGE
    assert challenge.authChallenge.challenge.auth_method_name == "token"
    assert challenge.authChallenge.challenge.auth_data == REFRESH_CHALLENGE
    conn.client_data(_auth_response(f"svc-orders:{clock.seconds() + 100}"))
    clock.advance(35)  # past the first token's expiry
    assert not io.closed
    assert conn.session.principal.groups == (f"svc-orders-{1070.0 + 100}",)  # the new token's claims
    assert io.sent(io.upstream)[-1].type == T.CONNECT  # the answer never reaches the broker
    clock.advance(35)
    assert io.sent(io.client)[0].type == T.AUTH_CHALLENGE  # and the next refresh is asked for
    clock.advance(31)
    assert io.closed, "an unanswered challenge ends the session at the new expiry"


def test_a_refreshed_token_for_another_principal_is_refused_and_the_connection_closes() -> None:
    conn, io, clock = _start(lifetime=100)
    clock.advance(70)
    io.sent(io.client)
    conn.client_data(_auth_response(f"svc-admin:{clock.seconds() + 100}"))
    [error] = io.sent(io.client)
    assert error.type == T.ERROR and error.error.error == wire.AuthenticationError
    assert "'svc-admin', not the session's principal 'svc-orders'" in error.error.message
    assert io.closed


def test_an_invalid_refreshed_token_is_refused() -> None:
    conn, io, clock = _start(lifetime=100)
    clock.advance(70)
    io.sent(io.client)
    conn.client_data(_auth_response("bad:0"))
    [error] = io.sent(io.client)
    assert error.error.error == wire.AuthenticationError and "refreshed token refused" in error.error.message
    assert io.closed


def test_an_answer_that_is_not_a_token_is_refused() -> None:
    conn, io, clock = _start(lifetime=100)
    clock.advance(70)
    io.sent(io.client)
    conn.client_data(_auth_response("svc-orders:5000", method="basic"))
    assert io.sent(io.client)[0].error.error == wire.AuthenticationError
    assert io.closed


def test_an_auth_response_nobody_asked_for_is_refused() -> None:
    conn, io, _ = _start(lifetime=100)
    conn.client_data(_auth_response("svc-orders:99999"))
    [error] = io.sent(io.client)
    assert error.error.error == wire.AuthenticationError and "without an outstanding" in error.error.message
    assert io.closed


def test_a_client_that_cannot_refresh_is_not_challenged_and_its_session_ends_at_expiry() -> None:
    _, io, clock = _start(lifetime=100, refresh=False)
    clock.advance(99.9)
    assert io.sent(io.client) == [] and not io.closed
    clock.advance(0.2)
    assert io.closed


def test_refresh_before_zero_turns_the_challenge_off() -> None:
    _, io, clock = _start(lifetime=100, refresh_before=0)
    clock.advance(101)
    assert io.sent(io.client) == [] and io.closed


def test_a_short_token_is_challenged_at_half_its_life() -> None:
    _, io, clock = _start(lifetime=8, refresh_before=30)
    clock.advance(3.9)
    assert io.sent(io.client) == []
    clock.advance(0.2)
    assert io.sent(io.client)[0].type == T.AUTH_CHALLENGE


def test_no_challenge_before_the_client_has_its_connected() -> None:
    conn, io, clock = _connection()
    conn.client_data(_connect(f"svc-orders:{clock.seconds() + 10}"))
    conn.upstream_connected()
    clock.advance(5.5)  # the challenge is due (half of 10 s), but the broker has not answered yet
    assert io.sent(io.client) == []
    _connected(conn)
    clock.advance(0.5)
    assert [x.type for x in io.sent(io.client)] == [T.CONNECTED, T.AUTH_CHALLENGE]


# -- Gatekeeper's CONNECT to the broker ----------------------------------------------------------


def _upstream_connect(**kw: Any) -> tuple[wire.CommandConnect, FakeIO]:
    conn, io, clock = _connection(**kw)
    conn.client_data(_connect(f"svc-orders:{clock.seconds() + 100}"))
    conn.upstream_connected()
    [ours] = io.sent(io.upstream)
    return ours.connect, io


def test_original_principal_is_the_clients_sub_only_when_configured() -> None:
    ours, _ = _upstream_connect(original_principal=True)
    assert ours.original_principal == "svc-orders"
    assert ours.auth_method_name == "token" and ours.auth_data == b"gatekeeper-token"
    assert not ours.HasField("original_auth_data")
    plain, _ = _upstream_connect()
    assert not plain.HasField("original_principal"), "the client's own original_principal was forwarded"


def test_the_broker_is_reached_with_the_listeners_upstream_tls_settings() -> None:
    tls = object()
    _, io = _upstream_connect(upstream_tls=tls, brokers=(BROKER_TLS,))
    assert io.target == UpstreamTarget(BROKER_TLS.host, BROKER_TLS.port, tls)
    _, io = _upstream_connect()
    assert io.target == UpstreamTarget(BROKER.host, BROKER.port, None)


# -- lookup answers -----------------------------------------------------------------------------


def _lookup_answer(conn: PulsarConnection, io: FakeIO, plain: str, tls: str) -> wire.CommandLookupTopicResponse:
    cmd = wire.BaseCommand(type=T.LOOKUP_RESPONSE)
    r = cmd.lookupTopicResponse
    r.request_id = 3
    r.response = wire.CommandLookupTopicResponse.Connect
    r.brokerServiceUrl = plain
    if tls:
        r.brokerServiceUrlTls = tls
    r.proxy_through_service_url = True
    conn.upstream_data(_frame(cmd))
    [answer] = io.sent(io.client)
    return answer.lookupTopicResponse


def test_a_tls_listener_answers_lookups_with_its_pulsar_ssl_url() -> None:
    conn, io, _ = _start(tls=True)
    r = _lookup_answer(conn, io, "pulsar://10.0.0.5:6650", "pulsar+ssl://10.0.0.5:6651")
    assert r.brokerServiceUrlTls == "pulsar+ssl://gk.example:9001"
    assert r.brokerServiceUrl == "pulsar+ssl://gk.example:9001"
    assert not r.proxy_through_service_url


def test_a_plain_listener_drops_the_brokers_tls_url() -> None:
    conn, io, _ = _start()
    r = _lookup_answer(conn, io, "pulsar://10.0.0.5:6650", "pulsar+ssl://10.0.0.5:6651")
    assert r.brokerServiceUrl == "pulsar://gk.example:9001" and not r.HasField("brokerServiceUrlTls")


def test_over_upstream_tls_the_brokers_tls_url_is_the_one_matched() -> None:
    conn, io, _ = _start(tls=True, upstream_tls=object(), brokers=(BROKER_TLS,))
    r = _lookup_answer(conn, io, "pulsar://10.0.0.5:6650", "pulsar+ssl://10.0.0.5:6651")
    assert r.brokerServiceUrlTls == "pulsar+ssl://gk.example:9001"
    # A broker that offers no TLS URL is not one Gatekeeper reaches over TLS: refused.
    conn, io, _ = _start(tls=True, upstream_tls=object(), brokers=(BROKER_TLS,))
    r = _lookup_answer(conn, io, "pulsar://10.0.0.5:6650", "")
    assert r.response == wire.CommandLookupTopicResponse.Failed and r.error == wire.ServiceNotReady


# -- the broker token re-read --------------------------------------------------------------------


def test_reload_rereads_the_broker_token_and_keeps_the_old_one_when_unreadable(tmp_path: Path) -> None:
    from gatekeeper.api import AdapterServices
    from gatekeeper.config import parse_config

    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    config = parse_config({
        "listeners": [{"name": "p", "protocol": "pulsar", "bind": "127.0.0.1:16650", "broker_ports": "16651-16651",
                       "options": {"token_file": str(token_file)}}],
        "upstream": {"bootstrap_servers": ["127.0.0.1:6650"]},
        "policy": {"engine": "allow-all"},
    })
    services = AdapterServices(config=config, metrics=Metrics(), clock=lambda: 0.0, identity=None,
                               upstream_credentials=lambda: None, principal_for_client_id=lambda cid: None,
                               next_bootstrap=lambda: None, inputs_decoded=lambda inputs: None)
    adapter = PulsarAdapter(services)
    token = adapter._settings["p"].upstream_token
    assert token() == "first"
    token_file.write_text("second\n")
    assert adapter.reload() == [{"name": "listeners[0].options.token_file", "file": str(token_file), "result": "loaded"}]
    assert token() == "second"
    assert adapter.reload()[0]["result"] == "unchanged"
    token_file.unlink()
    [failed] = adapter.reload()
    assert failed["result"] == "failed" and "cannot read" in failed["error"]
    assert token() == "second"


def test_sighup_reload_rereads_the_adapters_token_and_audits_which(tmp_path: Path) -> None:
    from twisted.internet.testing import MemoryReactorClock

    from gatekeeper.config import parse_config
    from gatekeeper.proxy.gateway import GatewayService

    token_file = tmp_path / "token"
    token_file.write_text("first\n")
    config = parse_config({
        "listeners": [{"name": "p", "protocol": "pulsar", "bind": "127.0.0.1:16650", "broker_ports": "16651-16651",
                       "options": {"token_file": str(token_file)}}],
        "upstream": {"bootstrap_servers": ["127.0.0.1:6650"]},
        "policy": {"engine": "allow-all"},
    })
    service = GatewayService(config, MemoryReactorClock())
    records: list[tuple[str, dict[str, Any]]] = []

    class Trail:
        def record(self, kind: str, fields: dict[str, Any]) -> None:
            records.append((kind, fields))

    service.gateway.audit = Trail()  # type: ignore[assignment]
    token_file.write_text("second\n")
    service.reload()
    adapter = service.gateway.adapters["pulsar"]
    assert adapter.tokens["p"] == "second"  # type: ignore[attr-defined]
    secrets = [fields for kind, fields in records if kind == "secret_reload"]
    assert secrets == [{"secrets": [{"name": "listeners[0].options.token_file", "file": str(token_file),
                                     "result": "loaded"}]}]
