"""The policy engine: cache, strict decisions, fail closed on errors and timeouts."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from zope.interface import implementer

from gatekeeper.metrics import Metrics
from gatekeeper.policy.cache import DecisionCache, cache_key
from gatekeeper.policy.decision import parse_decision
from gatekeeper.policy.embedded_backend import EmbeddedBackend
from gatekeeper.policy.engine import IPolicyBackend, PolicyEngine


@implementer(IPolicyBackend)
class ScriptedBackend:
    name = "scripted"

    def __init__(self) -> None:
        self.sources: Mapping[str, str] | None = {"scripted.rego": "package gatekeeper\n"}
        self.calls: list[list[Any]] = []
        self.answer: Any = None
        self.pending: defer.Deferred[Any] | None = None

    def start(self) -> defer.Deferred[None]:
        return defer.succeed(None)

    reload = stop = start

    def evaluate_many(self, inputs: Any) -> defer.Deferred[list[Any]]:
        self.calls.append(list(inputs))
        if self.answer == "hang":
            self.pending = defer.Deferred()
            return self.pending
        if isinstance(self.answer, Exception):
            return defer.fail(self.answer)
        return defer.succeed([self.answer(i) if callable(self.answer) else self.answer for i in inputs])


def _input(topic: str, t: str = "2026-11-23T00:00:00Z", count: int = 1) -> dict[str, Any]:
    return {"operation": "produce", "resource": {"type": "topic", "name": topic}, "time": t,
            "session": {"id": "s", "started_at": t}, "request": {"acks": -1, "record_count": count, "bytes": count * 10}}


def make(answer: Any) -> tuple[PolicyEngine, ScriptedBackend, MemoryReactorClock]:
    reactor = MemoryReactorClock()
    backend = ScriptedBackend()
    backend.answer = answer
    engine = PolicyEngine(backend, DecisionCache(100, 5.0, reactor.seconds), Metrics(), reactor, timeout=0.25)
    result(engine.start())
    return engine, backend, reactor


def result(d: defer.Deferred[Any]) -> Any:
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "deferred has not fired"
    return out[0]


def test_cache_ignores_volatile_fields_and_honours_ttl() -> None:
    engine, backend, reactor = make({"action": "allow", "ttl": "2s"})
    assert result(engine.decide_many([_input("orders")]))[0].allowed
    assert result(engine.decide_many([_input("orders", t="2026-11-23T00:00:09Z", count=50)]))[0].allowed
    assert len(backend.calls) == 1  # time, session and sizes are not part of the key
    reactor.advance(2.5)
    engine.decide_many([_input("orders")])
    assert len(backend.calls) == 2
    assert cache_key(_input("orders")) != cache_key(_input("payments"))


def test_decisions_all_in_the_cache_are_answered_at_once_and_any_miss_waits_for_the_backend() -> None:
    engine, backend, _ = make(lambda i: {"action": "allow" if i["resource"]["name"] == "a" else "deny", "reason": "r"})
    first = engine.decide_now([_input("a"), _input("b")])
    assert isinstance(first, defer.Deferred)  # nothing cached yet: asked of the backend
    assert [d.action for d in result(first)] == ["allow", "deny"]
    hit = engine.decide_now([_input("b", count=7), _input("a")])
    assert isinstance(hit, list) and [d.action for d in hit] == ["deny", "allow"]  # the decisions themselves
    assert len(backend.calls) == 1
    assert engine.metrics.get("gatekeeper_decision_cache_total", result="hit") == 2
    mixed = engine.decide_now([_input("a"), _input("c")])  # one miss: the whole batch waits for it
    assert isinstance(mixed, defer.Deferred) and [d.action for d in result(mixed)] == ["allow", "deny"]
    assert backend.calls[-1] == [_input("c")]
    assert engine.metrics.get("gatekeeper_decision_cache_total", result="miss") == 3
    assert [d.action for d in result(engine.decide_many([_input("a")]))] == ["allow"]  # still a Deferred


def test_misses_are_batched_in_one_backend_call() -> None:
    engine, backend, _ = make(lambda i: {"action": "allow" if i["resource"]["name"] == "a" else "deny", "reason": "r"})
    decisions = result(engine.decide_many([_input("a"), _input("b"), _input("a2")]))
    assert [d.action for d in decisions] == ["allow", "deny", "deny"]
    assert len(backend.calls) == 1 and len(backend.calls[0]) == 3


def test_malformed_or_undefined_decisions_deny_with_a_reason() -> None:
    for raw, words in [(None, "undefined"), ({"action": "maybe"}, "maybe"), ({"reason": "x"}, "action"),
                       ({"action": "mask"}, "mask"), ({"action": "allow", "ttl": 5}, "ttl")]:
        engine, _, _ = make(raw)
        (d,) = result(engine.decide_many([_input("orders")]))
        assert d.action == "deny" and "no valid decision" in d.reason and words in d.reason, (raw, d.reason)
        assert len(engine.cache) == 0  # failures are never cached


def test_engine_down_and_timeout_fail_closed() -> None:
    engine, _, reactor = make(ConnectionRefusedError("Connection refused"))
    (d,) = result(engine.decide_many([_input("orders")]))
    assert d.action == "deny" and "policy engine scripted failed" in d.reason and "refused" in d.reason
    engine, backend, reactor = make("hang")
    pending = engine.decide_many([_input("orders")])
    reactor.advance(0.3)
    (d,) = result(pending)
    assert d.action == "deny" and "did not answer within 250 ms" in d.reason
    assert engine.metrics.get("gatekeeper_engine_errors_total", engine="scripted", kind="timeout") == 1


# -- what the cache may leave out of its key ---------------------------------------------------


def test_a_ttl_of_zero_opts_a_decision_out_of_the_cache() -> None:
    assert parse_decision({"action": "allow", "ttl": "0s"}).ttl == 0.0
    assert parse_decision({"action": "allow", "ttl": "0ms"}).ttl == 0.0
    engine, backend, _ = make({"action": "allow", "reason": "r", "ttl": "0s"})
    for _ in range(3):
        assert result(engine.decide_many([_input("orders")]))[0].allowed
    assert len(backend.calls) == 3 and len(engine.cache) == 0


def test_the_ttl_counts_from_when_the_decision_was_asked_for() -> None:
    engine, backend, reactor = make("hang")
    pending = engine.decide_many([_input("orders")])
    reactor.advance(0.2)  # the engine takes 200 ms to answer a decision with a 1 s ttl
    assert backend.pending is not None
    backend.pending.callback([{"action": "allow", "ttl": "1s"}])
    assert result(pending)[0].allowed
    reactor.advance(0.79)
    engine.decide_many([_input("orders")])
    assert len(backend.calls) == 1  # still cached 990 ms after it was asked for
    reactor.advance(0.02)
    backend.answer = {"action": "allow", "ttl": "1s"}
    engine.decide_many([_input("orders")])
    assert len(backend.calls) == 2  # not 1 s after it was answered


def test_policies_gatekeeper_cannot_see_are_not_cached() -> None:
    engine, backend, _ = make({"action": "allow", "ttl": "30s"})
    backend.sources = None  # OPA serving bundles
    result(engine.reload())
    assert engine.cache_keeps is None
    for _ in range(2):
        engine.decide_many([_input("orders")])
    assert len(backend.calls) == 2
    assert engine.metrics.get("gatekeeper_decision_cache_total", result="off") == 2


def test_no_caching_before_the_policies_are_loaded() -> None:
    reactor = MemoryReactorClock()
    backend = ScriptedBackend()
    backend.answer = {"action": "allow", "ttl": "30s"}
    engine = PolicyEngine(backend, DecisionCache(100, 5.0, reactor.seconds), Metrics(), reactor, timeout=0.25)
    engine.decide_many([_input("orders")])
    engine.decide_many([_input("orders")])
    assert len(backend.calls) == 2 and len(engine.cache) == 0


def test_an_answer_from_before_a_reload_is_not_cached_under_the_new_key() -> None:
    engine, backend, _ = make("hang")
    pending = engine.decide_many([_input("orders")])
    backend.sources = {"size.rego": "package gatekeeper\nbig if input.request.bytes > 10\n"}
    result(engine.reload())
    assert engine.cache_keeps == frozenset({"request.bytes"})
    assert backend.pending is not None
    backend.pending.callback([{"action": "allow", "ttl": "30s"}])
    assert result(pending)[0].allowed
    assert len(engine.cache) == 0


def test_the_key_keeps_exactly_the_fields_the_policies_read() -> None:
    small, big = _input("orders", count=1), _input("orders", count=500)
    assert cache_key(small) == cache_key(big)
    assert cache_key(small, frozenset({"request.bytes"})) != cache_key(big, frozenset({"request.bytes"}))
    other_session = {**small, "session": {"id": "s2", "started_at": small["time"]}}
    assert cache_key(small, frozenset({"request.bytes"})) == cache_key(other_session, frozenset({"request.bytes"}))
    assert cache_key(small, frozenset({"session"})) != cache_key(other_session, frozenset({"session"}))
    # A client rotating its (self-chosen) client id does not miss the cache, unless a policy reads it.
    other_client = {**small, "client": {"id": "rotated-4711", "address": "10.9.9.9"}}
    assert cache_key(small) == cache_key(other_client)
    assert cache_key(small, frozenset({"client"})) != cache_key(other_client, frozenset({"client"}))


# -- through the embedded engine: the real Rego, scan and cache ---------------------------------


class _SyncReactor(MemoryReactorClock):
    def callFromThread(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:  # noqa: N802
        f(*args, **kwargs)


class _SyncPool:
    """Runs the embedded backend's 'thread' work at once, so no reactor needs to run."""

    started, joined = False, False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.joined = True

    def callInThreadWithCallback(self, on_result: Callable[[bool, Any], None], f: Callable[..., Any], *args: Any, **kwargs: Any) -> None:  # noqa: N802
        try:
            value = f(*args, **kwargs)
        except Exception:
            on_result(False, Failure())
        else:
            on_result(True, value)


class _Counting(EmbeddedBackend):
    evaluated = 0

    def evaluate_many(self, inputs: Any) -> defer.Deferred[list[Any]]:
        self.evaluated += len(inputs)
        return super().evaluate_many(inputs)


def embedded_engine(tmp_path: Path, rego: str) -> tuple[PolicyEngine, _Counting, _SyncReactor]:
    (tmp_path / "policy.rego").write_text(rego)
    reactor = _SyncReactor()
    backend = _Counting(tmp_path, None, "gatekeeper/decision", reactor)
    backend.pool = _SyncPool()  # type: ignore[assignment]
    engine = PolicyEngine(backend, DecisionCache(100, 5.0, reactor.seconds), Metrics(), reactor, timeout=0.25)
    result(engine.start())
    return engine, backend, reactor


SIZE_RULE = """\
package gatekeeper

default decision := {"action": "deny", "reason": "not a produce", "ttl": "30s"}

decision := {
	"action": "deny",
	"error": "policy_violation",
	"reason": sprintf("a produce of %d bytes is over the 1000000-byte limit", [input.request.bytes]),
	"ttl": "30s",
} if {
	input.operation == "produce"
	input.request.bytes > 1000000
} else := {"action": "allow", "reason": "small enough", "ttl": "30s"} if {
	input.operation == "produce"
}
"""


def _produce(size: int, t: str = "2026-11-23T10:00:00.000Z", session: str = "01A") -> dict[str, Any]:
    return {
        "version": 1, "protocol": "kafka", "operation": "produce",
        "api": {"key": 0, "name": "Produce", "version": 9},
        "principal": {"sub": "svc-orders", "issuer": None, "groups": [], "claims": {}, "mechanism": "PLAIN"},
        "resource": {"type": "topic", "name": "orders"},
        "client": {"id": "p", "address": "127.0.0.1"},
        "session": {"id": session, "started_at": "2026-11-23T09:00:00.000Z"},
        "request": {"acks": -1, "partitions": [0], "record_count": max(1, size // 1000), "bytes": size},
        "grants": [], "time": t,
    }


def test_a_size_rule_is_never_skipped_by_the_cache(tmp_path: Path) -> None:
    engine, backend, reactor = embedded_engine(tmp_path, SIZE_RULE)
    assert engine.cache_keeps == frozenset({"request.bytes"})
    (small,) = result(engine.decide_many([_produce(2_000)]))
    assert small.allowed and small.reason == "small enough"
    result(engine.decide_many([_produce(2_000, t="2026-11-23T10:00:01.000Z", session="01B")]))
    assert backend.evaluated == 1  # the same produce again (other time, other connection): cached
    reactor.advance(1)
    (big,) = result(engine.decide_many([_produce(2_000_000, t="2026-11-23T10:00:02.000Z")]))
    assert big.action == "deny" and big.error == "policy_violation"
    assert big.reason == "a produce of 2000000 bytes is over the 1000000-byte limit"
    assert backend.evaluated == 2


TIME_RULE = """\
package gatekeeper

default decision := {"action": "deny", "reason": "outside office hours", "ttl": "30s"}

decision := {"action": "allow", "reason": "office hours", "ttl": "30s"} if {
	[hour, _, _] := time.clock(time.parse_rfc3339_ns(input.time))
	hour >= 8
	hour < 18
}
"""


def test_a_time_rule_turns_the_cache_off_unless_its_ttl_covers_the_time(tmp_path: Path) -> None:
    engine, backend, _ = embedded_engine(tmp_path, TIME_RULE)
    assert engine.cache_keeps is None
    (day,) = result(engine.decide_many([_produce(10, t="2026-11-23T17:59:59.999Z")]))
    (night,) = result(engine.decide_many([_produce(10, t="2026-11-23T18:00:00.000Z")]))
    assert day.allowed and not night.allowed
    assert backend.evaluated == 2


TIME_RULE_WITH_TTL = """\
# METADATA
# custom:
#   gatekeeper:
#     ttl_covers_time: true
package gatekeeper

# Allowed before 18:00 (UTC) on 2026-11-23; the ttl of the allow ends at 18:00.
closing := time.parse_rfc3339_ns("2026-11-23T18:00:00Z")

left := closing - time.parse_rfc3339_ns(input.time)

default decision := {"action": "deny", "reason": "closed", "ttl": "30s"}

decision := {"action": "allow", "reason": "open", "ttl": ttl} if {
	left > 0
	ttl := sprintf("%dms", [min([30000, floor(left / 1000000)])])
}
"""


def test_a_time_rule_whose_ttl_covers_the_time_is_cached_up_to_the_change(tmp_path: Path) -> None:
    engine, backend, reactor = embedded_engine(tmp_path, TIME_RULE_WITH_TTL)
    assert engine.cache_keeps == frozenset()
    (open_,) = result(engine.decide_many([_produce(10, t="2026-11-23T17:59:58.000Z")]))
    assert open_.allowed and open_.ttl == 2.0
    reactor.advance(1.999)
    assert result(engine.decide_many([_produce(10, t="2026-11-23T17:59:59.999Z")]))[0].allowed
    assert backend.evaluated == 1
    reactor.advance(0.001)
    (closed,) = result(engine.decide_many([_produce(10, t="2026-11-23T18:00:00.000Z")]))
    assert not closed.allowed and backend.evaluated == 2


def test_the_shipped_library_is_cached_with_every_volatile_field_left_out(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    reactor = _SyncReactor()
    backend = EmbeddedBackend(root / "policies", root / "policies" / "data.json", "gatekeeper/decision", reactor)
    backend.pool = _SyncPool()  # type: ignore[assignment]
    engine = PolicyEngine(backend, DecisionCache(100, 5.0, reactor.seconds), Metrics(), reactor, timeout=0.25)
    result(engine.start())
    assert engine.cache_keeps == frozenset()


def test_identical_inputs_in_flight_are_evaluated_once(tmp_path: Path) -> None:
    """Single flight: callers asking for a key already being evaluated wait for that answer."""
    from gatekeeper.api import Decision as _D

    class _Held:
        name = "held"
        concurrency = 4
        sources: Any = {}

        def __init__(self) -> None:
            self.calls: list[tuple[list[Any], defer.Deferred[list[Any]]]] = []

        def evaluate_many(self, inputs: Any) -> defer.Deferred[list[Any]]:
            d: defer.Deferred[list[Any]] = defer.Deferred()
            self.calls.append((list(inputs), d))
            return d

    reactor = MemoryReactorClock()
    backend = _Held()
    engine = PolicyEngine(backend, DecisionCache(100, 5.0, reactor.seconds), Metrics(), reactor, timeout=5)  # type: ignore[arg-type]
    engine.cache_keeps = frozenset()
    first = engine.decide_many([_input("orders"), _input("payments")])
    second = engine.decide_many([_input("orders")])
    third = engine.decide_many([_input("orders"), _input("orders.eu")])
    assert [len(inputs) for inputs, _ in backend.calls] == [2, 1]  # "orders" asked once
    backend.calls[0][1].callback([{"action": "allow", "ttl": "30s"}, {"action": "deny", "reason": "no"}])
    backend.calls[1][1].callback([{"action": "allow", "ttl": "30s"}])
    assert [d.action for d in result(first)] == ["allow", "deny"]
    waited = result(second)
    assert [d.action for d in waited] == ["allow"] and isinstance(waited[0], _D)
    assert [d.action for d in result(third)] == ["allow", "allow"]


def test_engine_failures_are_logged_once_per_batch_and_reason_within_an_interval() -> None:
    from twisted.logger import LogLevel, globalLogPublisher

    events: list[dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        engine, backend, reactor = make("hang")
        first = [engine.decide_many([_input(f"t{n}-{i}") for i in range(3)]) for n in range(50)]
        reactor.advance(0.3)  # all 50 batches (150 inputs) time out together
        reactor.advance(1)
        second = engine.decide_many([_input("late")])
        reactor.advance(0.3)
        reactor.advance(5)  # past the interval: the next failure is logged with the count held back
        third = engine.decide_many([_input("later")])
        reactor.advance(0.3)
    finally:
        globalLogPublisher.removeObserver(events.append)
    assert all(result(d)[0].action == "deny" for d in [*first, second, third])
    assert engine.metrics.get("gatekeeper_engine_errors_total", engine="scripted", kind="timeout") == 52
    errors = [e for e in events if e.get("log_level") == LogLevel.error and e.get("log_namespace") == "gatekeeper.policy.engine"]
    assert [(e["count"], e["more"]) for e in errors] == [
        (3, ""), (1, "; 50 more failed batches like it were not logged"),
    ]
    assert '"t0-0"' in errors[0]["input"] and '"later"' in errors[1]["input"]


def _key_as_it_was(policy_input: Mapping[str, Any], keep: frozenset[str] = frozenset()) -> bytes:
    """The cache key as it was first written (comprehensions, orjson's non-string-key option on
    every key): the oracle the faster form must match byte for byte."""
    stable = {k: v for k, v in policy_input.items() if k not in ("time", "session", "client") or k in keep}
    request = policy_input.get("request")
    if request:
        stable["request"] = {k: v for k, v in request.items()
                             if k not in ("bytes", "record_count") or f"request.{k}" in keep}
    try:
        return orjson.dumps(stable, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS)
    except TypeError:
        return json.dumps(stable, sort_keys=True, separators=(",", ":"), default=str).encode()


_scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=6)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.text(max_size=6) | st.integers(-3, 3), inner, max_size=3), max_leaves=8)
_requests = st.none() | st.dictionaries(st.sampled_from(["bytes", "record_count", "acks", "partitions", "resolving"])
                                        | st.integers(0, 2), _values, max_size=4)


@given(base=st.dictionaries(st.sampled_from(["version", "operation", "principal", "resource", "grants", "api", "x"]),
                            _values, max_size=5),
       volatile=st.dictionaries(st.sampled_from(["time", "session", "client"]), _values, max_size=3),
       request=_requests,
       keep=st.frozensets(st.sampled_from(["time", "session", "client", "request.bytes", "request.record_count"])))
@settings(max_examples=400, deadline=None)
def test_the_cache_key_is_byte_for_byte_the_key_as_it_was(base: dict[str, Any], volatile: dict[str, Any],
                                                          request: Any, keep: frozenset[str]) -> None:
    policy_input = {**base, **volatile, "request": request}
    before = {k: (dict(v) if isinstance(v, dict) else v) for k, v in policy_input.items()}

    def outcome(key: Callable[..., bytes]) -> Any:
        try:
            return key(policy_input, keep)
        except TypeError as e:  # neither json writer takes it (mixed key types and a huge integer)
            return type(e)

    assert outcome(cache_key) == outcome(_key_as_it_was)
    assert policy_input == before  # the input is not changed
