"""The connection core with arbitrary client bytes, arbitrary broker bytes and any decisions.

"A bad frame closes that connection with a log line": whatever arrives, the core answers,
forwards or closes (``io.close`` with a warning or error logged), and never raises.

Input: a setup byte, then operations. Setup: bit 0 SASL at the listener (OAUTHBEARER and
PLAIN, tokens checked against the harness's key), bit 1 login required, bit 2 Gatekeeper
authenticates to the broker (SCRAM-SHA-512, bit 3 PLAIN). Each operation is one byte, and
for bytes a 2-byte big-endian length and that many bytes:
  0 client bytes · 1 broker bytes · 2 answer the pending decisions (one byte each:
  allow, deny, deny as policy violation, mask) · 3 run offloaded work · 4 advance the clock
  (one byte, quarter seconds) · 5 a decision fails · 6 the broker goes away · 7 the client
  goes away · 8 drain (shutdown).
"""

from __future__ import annotations

import json
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.internet import task
from twisted.logger import globalLogPublisher

from fuzz.sasl_jwt import _JWK, AUDIENCE, ISSUER
from gatekeeper.api import ANONYMOUS, AdapterServices, Decision
from gatekeeper.kafka.adapter import KafkaAdapter
from gatekeeper.masking import Masking
from gatekeeper.metrics import gateway_metrics
from gatekeeper.testing.connection import RecordingIO
from gatekeeper.testing.fakes import fake_config
from gatekeeper.values import HostPort

EXPECTED: tuple[type[BaseException], ...] = ()
BOOTSTRAP = HostPort("127.0.0.1", 19092)
DECISIONS = (
    Decision("allow"),
    Decision("deny", reason="fuzz"),
    Decision("deny", reason="fuzz", error="policy_violation"),
    Decision("mask", reason="fuzz", mask=({"field": "$.card", "masker": "redact"}, {"detector": "email", "masker": "redact"})),
)
_JWKS = Path(tempfile.mkdtemp(prefix="fuzz-jwks-")) / "jwks.json"
_JWKS.write_text(json.dumps({"keys": [_JWK]}))
_LOGGED: list[dict[str, Any]] = []


def _observe(event: dict[str, Any]) -> None:
    if event.get("log_namespace") == "gatekeeper.proxy.client" and len(_LOGGED) < 1000:
        _LOGGED.append(event)


globalLogPublisher.addObserver(_observe)


_CONFIGS: dict[int, Any] = {}
_SHARED: dict[int, tuple[Any, Any]] = {}


def _config(setup: int) -> Any:
    cfg = _CONFIGS.get(setup & 3)
    if cfg is None:
        listener: dict[str, Any] = {"name": "fuzz", "bind": "127.0.0.1:9192", "advertised_host": "gk.example",
                                    "broker_ports": "9193-9195"}
        extra: dict[str, Any] = {}
        if setup & 1:
            listener["authentication"] = {"mechanisms": ["OAUTHBEARER", "PLAIN"], "required": bool(setup & 2)}
            extra["identity"] = {"jwt": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": str(_JWKS)}}
        cfg = _CONFIGS[setup & 3] = fake_config(listeners=[listener], **extra)
    return cfg


def core_for(setup: int) -> tuple[Any, RecordingIO]:
    from gatekeeper.identity.service import IdentityService

    clock = task.Clock()
    clock.advance(time.time())
    cfg = _config(setup)
    credentials = None
    if setup & 4:
        credentials = ("PLAIN" if setup & 8 else "SCRAM-SHA-512", "gatekeeper", "secret")
    shared = _SHARED.get(setup & 1)
    if shared is None:  # metrics and the token validator outlive an input: building them is most of one
        shared = _SHARED[setup & 1] = (gateway_metrics(), IdentityService(cfg.identity.jwt, clock) if setup & 1 else None)
    metrics, identity = shared
    if identity is not None:
        identity.reactor = clock
        identity.validator.on_unknown_kid = lambda: None  # no JWKS refresh (a thread) here
    services = AdapterServices(
        config=cfg, metrics=metrics, clock=clock.seconds, identity=identity,
        upstream_credentials=lambda: credentials, principal_for_client_id=lambda cid: ANONYMOUS,
        next_bootstrap=lambda: BOOTSTRAP, inputs_decoded=lambda inputs: None,
        masking=Masking(cfg.masking),
    )
    io = RecordingIO(clock, keep=False)  # bytes counted, not kept
    core = KafkaAdapter(services).connection(cfg.listeners[0], None, io)
    core.start("127.0.0.1", 50000)
    return core, io


def ops(data: bytes) -> list[tuple[int, bytes]]:
    """The operations of an input (see the module's docstring)."""
    out, pos = [], 1
    while pos < len(data):
        op = data[pos] % 9
        pos += 1
        if op in (0, 1):
            n = struct.unpack_from(">H", data, pos)[0] if pos + 2 <= len(data) else 0
            pos += 2
            out.append((op, data[pos : pos + n]))
            pos += n
        elif op in (2, 4):
            out.append((op, data[pos : pos + 1]))
            pos += 1
        else:
            out.append((op, b""))
    return out


def encode(setup: int, steps: list[tuple[int, bytes]]) -> bytes:
    """An input from a setup byte and operations (for seeds)."""
    out = bytearray([setup])
    for op, arg in steps:
        out.append(op)
        if op in (0, 1):
            out += struct.pack(">H", len(arg)) + arg
        elif op in (2, 4):
            out += arg[:1] or b"\x00"
    return bytes(out)


def one_input(data: bytes) -> None:
    if not data:
        return
    del _LOGGED[:]
    core, io = core_for(data[0])
    connected = False
    drained = False
    for op, arg in ops(data):
        if op == 0:
            core.client_data(arg)
        elif op == 1:
            if io.targets and not connected:
                connected = True
                core.upstream_connected()
            core.upstream_data(arg)
        elif op == 2:
            asked, io.asked = io.asked, []
            for token, inputs in asked:
                pick = arg[0] if arg else 0
                core.decided(token, [DECISIONS[(pick >> (2 * (i % 4))) % 4] for i in range(len(inputs))])
        elif op == 3:
            io.run_offloaded()
        elif op == 4:
            io.clock.advance((arg[0] if arg else 0) / 4)
        elif op == 5:
            if io.asked:
                token, _ = io.asked.pop(0)
                core.decision_failed(token, "fuzz")
        elif op == 6:
            core.upstream_lost("fuzz")
        elif op == 7:
            core.client_lost()
        else:
            drained = True
            core.drain()
        if io.closed and not core.closing:
            raise AssertionError("the shell was told to close but the core is not closing")
    if io.closed and not drained and not _LOGGED:
        raise AssertionError("the connection was closed without a log line")
    core.client_lost()
    io.clock.advance(3600)
