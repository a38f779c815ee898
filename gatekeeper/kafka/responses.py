"""The response side of a Kafka connection core: the broker's bytes back to the client.

A response that needs no rewriting and is next in line is passed through as it arrives
(cut-through); anything else is reassembled, decoded, merged with a partial deny's errors,
filtered (listings), rewritten (broker addresses) and re-encoded. Gatekeeper's own SASL with
the broker and its topic-id probes are answered here too. Mixed into ``KafkaConnection``.
"""

from __future__ import annotations

import struct
from collections import deque
from typing import Any

from twisted.logger import Logger

from gatekeeper.api import ConnectionIO, Decision
from gatekeeper.kafka.apis import UNITS
from gatekeeper.kafka.apis.base import Listing, ResponseContext, topic_resource
from gatekeeper.kafka.auditing import (
    AUDITED_RESPONSES,
    Outcome,
    fetch_outcome,
    fetched_partitions,
    read_outcome,
)
from gatekeeper.kafka.codec import CodecError
from gatekeeper.kafka.entry import Entry
from gatekeeper.kafka.framing import FrameDecoder, FrameError
from gatekeeper.kafka.masking import MaskCounts, mask_fetch, mask_share_fetch, masked_by_topic
from gatekeeper.kafka.sasl_client import UpstreamAuthenticator, UpstreamAuthError
from gatekeeper.kafka.settings import KafkaSettings

__all__ = ["GATHER_BUFFERS", "GatherBuffers", "ResponseSide"]

log = Logger(namespace="gatekeeper.proxy.client")
_CID = struct.Struct(">i")
_LARGE_ANSWERS = frozenset((1, 78))  # Fetch, ShareFetch: the answers that run to megabytes
_UNKNOWN_ID_SECONDS = 10.0  # a topic id the broker did not know is not asked about again for this long


class GatherBuffers:
    """Buffers for audited answers gathered as they pass on (a Fetch answer's copy, read for its
    offsets once its last byte has gone), reused: a new bytearray is zeroed whole first (about
    30 µs a MiB) before the answer overwrites it. Reactor thread only. A buffer goes back once
    its answer was read; at most ``kept_bytes`` are kept between answers, the largest first."""

    def __init__(self, kept_bytes: int = 16 << 20) -> None:
        self.kept_bytes = kept_bytes
        self._free: list[bytearray] = []  # smallest first

    def take(self, size: int) -> bytearray:
        """A buffer of at least ``size`` bytes (what it held before is of no meaning)."""
        free = self._free
        for i, buf in enumerate(free):
            if len(buf) >= size:
                return free.pop(i)
        return bytearray(size)

    def give(self, buf: bytearray) -> None:
        if len(buf) > self.kept_bytes:
            return
        free = self._free
        free.append(buf)
        free.sort(key=len)
        while sum(map(len, free)) > self.kept_bytes:
            free.pop(0)  # the smallest goes first: the large answers are the ones worth a buffer

    @property
    def kept(self) -> int:
        return sum(map(len, self._free))

    def clear(self) -> None:
        self._free.clear()


# One per process, as the splicing pipe (gatekeeper/proxy/splicing.py): the reactor thread
# gathers answers of many connections at once, but takes and gives back each buffer itself.
GATHER_BUFFERS = GatherBuffers()


class ResponseSide:
    # State shared with the request side (set by KafkaConnection.__init__).
    s: KafkaSettings
    io: ConnectionIO
    listener: Any
    closing: bool
    responses: FrameDecoder
    _stream_left: int
    _streamed: tuple[Entry, bytearray, int] | None
    _bytes_out: int
    _from_broker: Any  # the bytes counter from the broker (settings.hot)
    _order: deque[Entry]
    _sent: deque[Entry]
    _waiting_for_ids: list[Any]
    state: Any
    _held: bool
    _probing: set[Any]
    _upstream_ready: bool
    _audit_due: list[Any]
    _upstream_auth: UpstreamAuthenticator | None
    _target: Any

    def _close(self, why: str, *, rejected: str | None = None, abort_upstream: bool = False) -> None:
        raise NotImplementedError

    def _write_client(self, data: Any) -> None:
        raise NotImplementedError

    def _upstream_broken(self, why: str) -> None:
        raise NotImplementedError

    def _upstream_is_ready(self) -> None:
        raise NotImplementedError

    def _inputs(self, request: Any, ops: Any) -> list[dict[str, Any]]:
        raise NotImplementedError

    def _ask(self, inputs: list[dict[str, Any]], then: Any) -> None:
        raise NotImplementedError

    def _decide(self, entry: Entry) -> None:
        raise NotImplementedError

    def _resolve_topic_ids(self, then: Any, topic_ids: set[Any]) -> None:
        raise NotImplementedError

    def _offload(self, size: int, work: Any, done: Any) -> None:
        raise NotImplementedError

    def _count_masking(self, counts: MaskCounts, direction: str) -> None:
        raise NotImplementedError

    def _mask_plans(self, ops: list[Any], decisions: list[Decision]) -> tuple[list[Decision], dict[Any, Any]]:
        raise NotImplementedError

    def _audit_outcome(self, entry: Entry, outcome: Outcome) -> None:
        raise NotImplementedError

    def _record_due(self) -> None:
        raise NotImplementedError

    def upstream_data(self, data: bytes) -> None:
        """Bytes from the broker. A response that needs no rewriting and is next in line for
        the client is passed through as it arrives (cut-through): no reassembly, no copy of
        large Fetch responses; anything else is reassembled and processed as a whole frame."""
        if self.closing:
            return
        if not self._upstream_ready:
            self._authenticating_upstream(data)
            return
        self._from_broker.inc(len(data))
        left = self._stream_left
        if left:
            piece = data if len(data) <= left else data[:left]
            view = self.passthrough_view()
            if view is not None:
                view[:len(piece)] = piece
            self._write_client([piece])
            self._stream_left = left - len(piece)
            if self._stream_left or not self._answer_passed():
                return
            data = data[len(piece):]
            if not data:
                return
        responses = self.responses
        responses.receive_data(data)
        try:
            while not self.closing and not self._stream_left:
                ids = responses.peek_ids()
                if ids is None:
                    break
                size, cid = ids
                if size > responses.max_frame_bytes or size < 4:  # not even a correlation id
                    raise FrameError(f"response frame length {size} is out of bounds")
                if not self._sent:
                    self._upstream_broken("broker sent a response to no request")
                    return
                entry = self._sent[0]
                # An answer read only for the audit trail's outcome is cut through too: read in
                # place when whole here (a Produce answer always is), else copied into one buffer
                # as it passes and read once the last byte has gone (a large Fetch answer). Either
                # way it goes to the client first: the record waits, not the client.
                read = entry.audited_response
                if not entry.internal and not entry.rewritten and self._order and self._order[0] is entry and (
                    not self.s.codec.needs_response_processing(entry.request)  # type: ignore[arg-type]
                ):
                    if not self._matches(entry, cid):
                        return
                    self._sent.popleft()
                    self._order.popleft()
                    chunk = responses.take(4 + size)
                    self._stream_left = 4 + size - len(chunk)
                    if read and self._stream_left:  # the whole answer gathered here as it passes
                        buf = GATHER_BUFFERS.take(4 + size)
                        buf[:len(chunk)] = chunk
                        self._streamed = (entry, buf, 4 + size)
                    self._write_client([chunk])
                    if not read:
                        self._audit_outcome(entry, {"from": "broker"})
                    elif not self._stream_left and not self._read_outcome(entry, chunk):
                        return
                    continue
                raw = responses.next_frame()
                if raw is None:
                    break
                self._response(raw)
        except FrameError as e:
            self._upstream_broken(f"broker sent an unframeable response: {e}")
            return
        if not self._stream_left:
            self._flush()

    def passthrough_left(self, read: bool = False) -> int:
        """How many of the broker's next bytes go to the client as they are: the rest of a
        cut-through answer (0 when there is none; any such answer, though only Fetch answers run
        long). The shell may move them itself and say so (``passed_through``). The rest of an
        answer the audit trail reads is offered only to a shell that copies what it moves
        (``read``): it puts each byte in ``passthrough_view()`` before it says it passed."""
        if self.closing or (self._streamed is not None and not read):
            return 0
        return self._stream_left

    def passthrough_view(self) -> memoryview | None:
        """Where the bytes ``passthrough_left(read=True)`` announced go, in order, before
        ``passed_through`` says they passed; None when nothing here reads them."""
        streamed = self._streamed
        if streamed is None:  # (cleared as soon as the answer's last byte has gone)
            return None
        _, buf, size = streamed
        return memoryview(buf)[size - self._stream_left:size]

    def passthrough_next(self, read: bool = False) -> bool:
        """True when the broker's next answer will be passed through as it is, whatever its
        size: nothing of it has arrived yet, and it answers a Fetch or ShareFetch that is next in
        line for the client, with nothing to rewrite (and, unless ``read``, nothing read for the
        trail). The shell may then hand over only its first 8 bytes (length and correlation id,
        which this side reads to match it to its request) and move the rest itself."""
        sent = self._sent
        if not sent or self.closing or self._stream_left:
            return False
        entry = sent[0]
        request = entry.request
        if request is None or request.header.api_key not in _LARGE_ANSWERS:  # most answers stop here
            return False
        return (self._upstream_ready and not self.responses.buffered and bool(self._order)
                and self._order[0] is entry and entry.internal is None and not entry.rewritten
                and (read or not entry.audited_response) and not self.s.codec.needs_response_processing(request))

    def passed_through(self, n: int, queued: int = 0, read: bool = False) -> None:
        """``n`` of the bytes ``passthrough_left(read)`` announced reached the client without
        passing through ``upstream_data``: ``n - queued`` into its socket, ``queued`` into its
        transport's queue (a slow client); with ``read``, copied into ``passthrough_view()``
        first. The answer's audit outcome is read once its last byte has passed."""
        if not 0 < n <= self.passthrough_left(read) or not 0 <= queued <= n:
            raise ValueError(f"{n} bytes passed through ({queued} queued), {self.passthrough_left(read)} were announced")
        metrics = self.s.metrics
        self._from_broker.inc(n)
        if n > queued:
            metrics.inc("gatekeeper_spliced_bytes_total", n - queued, to="socket")
        if queued:
            metrics.inc("gatekeeper_spliced_bytes_total", queued, to="queue")
        self._bytes_out += n
        self._stream_left -= n
        if not self._stream_left:
            self._answer_passed()

    def _answer_passed(self) -> bool:
        """The last byte of the answer passed on as it arrived has gone: its audit outcome read
        from the copy gathered meanwhile (when the trail reads it), and what waited behind it
        flushed. False (the connection is closing) when the broker's bytes do not read."""
        streamed = self._streamed
        if streamed is not None:
            self._streamed = None
            entry, buf, size = streamed
            # Read now, not when the record is built: the buffer is reused (the answer has gone).
            read = self._read_outcome(entry, memoryview(buf)[:size], now=True)
            GATHER_BUFFERS.give(buf)
            if not read:
                return False
        self._flush()
        return True

    def _read_outcome(self, entry: Entry, frame: bytes | memoryview, now: bool = False) -> bool:
        """Complete ``entry``'s request record with the outcome read from the broker's answer
        ``frame`` (length prefix included, already passed on); False (the connection is
        closing) when it does not read: the record then says so. A small answer is walked as
        bytes, a large one (or one gathered as it passed) through a view (no copy). ``now``:
        the outcome is built at once (``frame`` is about to change), not with the record."""
        try:
            body = frame[4:] if type(frame) is bytes and len(frame) < 65536 else memoryview(frame)[4:]
            outcome: Outcome
            outcome, _ = read_outcome(entry.request, body, self.s.cluster.topic_name)
            if now:
                outcome = outcome()
        except CodecError as e:
            self._audit_outcome(entry, {"from": "broker", "error": f"passed on, but {e}"})
            self._upstream_broken(str(e))
            return False
        self._audit_outcome(entry, outcome)
        return True

    def _authenticating_upstream(self, data: bytes) -> None:
        """Gatekeeper's own SASL exchange with the broker, before any client request goes."""
        auth = self._upstream_auth
        if auth is None:
            self._upstream_broken("broker sent data before the connection was ready")
            return
        self.responses.receive_data(data)
        try:
            while not auth.done:
                frame = self.responses.next_frame()
                if frame is None:
                    return
                out = auth.receive(frame)
                if out:
                    self.io.to_upstream(out)
        except (UpstreamAuthError, FrameError) as e:
            self._upstream_failed_auth(str(e))
            return
        except Exception as e:  # a response that does not decode
            self._upstream_failed_auth(f"broker's SASL response does not decode: {e}")
            return
        self._upstream_is_ready()
        leftover = self.responses.take(self.responses.buffered)
        if leftover:
            self.upstream_data(leftover)

    def _upstream_failed_auth(self, why: str) -> None:
        self.s.metrics.inc("gatekeeper_upstream_errors_total", kind="connect")
        self._close(f"cannot reach broker {self._target}: {why}", abort_upstream=True)

    def _matches(self, entry: Entry, cid: int) -> bool:
        assert entry.request is not None
        if cid != entry.request.header.correlation_id:
            self._upstream_broken(f"broker answered correlation id {cid}, expected {entry.request.header.correlation_id}")
            return False
        return True

    def _response(self, raw: bytes) -> None:
        """One whole response frame that has to be processed before the client sees it."""
        entry = self._sent.popleft()
        (cid,) = _CID.unpack_from(raw, 0)
        if entry.internal is not None:
            entry.internal(raw)
            return
        request = entry.request
        assert request is not None
        if not self._matches(entry, cid):
            return
        codec = self.s.codec
        if entry.mask is not None:
            self._mask_fetch_response(entry, raw)
            return
        if entry.audit is not None and request.header.api_key in AUDITED_RESPONSES:
            # Read for the audit trail's outcome (offsets, error codes), then passed on as it came
            # unless something else rewrites it.
            try:
                outcome, untagged = read_outcome(request, raw, self.s.cluster.topic_name)
            except CodecError as e:
                self._audit_outcome(entry, {"from": "broker", "error": str(e)})
                self._upstream_broken(str(e))
                return
            self._audit_outcome(entry, outcome)
            # A Produce answer the walk saw end without tagged fields names no new leader's
            # address, so processing it would pass it on unchanged: it is not walked again.
            if entry.merge is None and entry.filter_listing is None and (
                    untagged or not codec.needs_response_processing(request)):
                entry.response = raw
                return
        # Any other answer the broker gave: its request record is complete now (a processed
        # response is not cut through, where the outcome is otherwise recorded).
        self._audit_outcome(entry, {"from": "broker"})
        try:
            if not entry.processed:
                entry.response = codec.process_response(request, raw, self._response_context)
                return
            head, body = codec.decode_response(request, raw)
        except CodecError as e:
            self._upstream_broken(str(e))
            return
        learn = UNITS[request.header.api_key].learn
        if learn is not None:
            learn(request.header.api_version, request.body, body, self.state)
        if entry.merge is not None:
            body = entry.merge(body)
        if entry.filter_listing is None:
            entry.response = codec.finish_response(request, head, body, self._response_context)
            return
        self._filter_listing(entry, entry.filter_listing, head, body)

    def _mask_fetch_response(self, entry: Entry, raw: bytes) -> None:
        """A Fetch response with masked topics: decoded, masked and re-encoded (off the reactor
        when large); the client gets it in its turn, as every other response."""
        request = entry.request
        assert request is not None and entry.mask is not None
        plans, merge = entry.mask, entry.merge
        codec, ctx = self.s.codec, self._response_context
        limit = self.s.config.limits.max_decompressed_bytes

        resolve = self.s.cluster.topic_name
        audited = entry.audit is not None

        def work() -> tuple[bytes, MaskCounts, dict[str, Any] | None]:
            head, body = codec.decode_response(request, raw)
            if merge is not None:
                body = merge(body)
            counts = mask_fetch(body, request.header.api_version, plans, limit)
            outcome = fetch_outcome(fetched_partitions(body, request.header.api_version), resolve) if audited else None
            return codec.finish_response(request, head, body, ctx), counts, outcome

        def done(result: Any) -> None:
            if self.closing:
                return
            if isinstance(result, CodecError):
                self._upstream_broken(str(result))
                return
            if isinstance(result, BaseException):
                log.error("bug: masking a Fetch response failed: {e!r}", e=result)
                self._close(f"masking failed, response withheld (fail closed): {type(result).__name__}", abort_upstream=True)
                return
            entry.response, counts, outcome = result
            self._count_masking(counts, "consume")
            if entry.audit is not None and outcome is not None:
                entry.audit[1].consume_masked = masked_by_topic(counts)
                self._audit_outcome(entry, outcome)
            self._flush()

        self._offload(len(raw), work, done)

    def _filter_listing(self, entry: Entry, listing: Listing, head: bytes, body: Any) -> None:
        """A listing (all topics, groups, transactions) keeps only what the principal may
        describe, as Kafka's own authorizer does, so existence is not leaked."""
        request = entry.request
        assert request is not None
        cluster, now = self.s.cluster, self.s.clock()
        ids = {i for i in listing.topic_ids(body) if cluster.topic_name(i) is None and not cluster.known_unknown(i, now)}
        if ids:  # an answer naming topics by id: their names first (by id), then decided
            self._resolve_topic_ids(lambda: self._filter_listing(entry, listing, head, body), ids)
            return
        ops = listing.operations(body, self.s.cluster.topic_name)
        if not ops:
            entry.response = self.s.codec.finish_response(request, head, body, self._response_context)
            return
        inputs = self._inputs(request, ops)
        self.s.inputs_decoded(inputs)

        def filtered(decisions: list[Decision]) -> None:
            plans: dict[Any, Any] = {}
            if getattr(listing, "maskable", False) and any(d.action == "mask" for d in decisions):
                decisions, plans = self._mask_plans(ops, decisions)
            mask_allows = getattr(listing, "mask_allows", False)
            listing.keep(body, [d.allowed or (mask_allows and d.action == "mask") for d in decisions])
            if plans:
                self._mask_share_fetch(entry, head, body, plans)
                return
            entry.response = self.s.codec.finish_response(request, head, body, self._response_context)
            self._flush()

        self._ask(inputs, filtered)

    def _mask_share_fetch(self, entry: Entry, head: bytes, body: Any, plans: dict[Any, Any]) -> None:
        """A ShareFetch response whose topics were decided again with mask decisions: their
        records masked (off the reactor when large), then encoded; fail closed as Fetch."""
        request = entry.request
        assert request is not None
        resolve = self.s.cluster.topic_name
        keys = {t.topic_id: (r.name, plans[r]) for t in body.responses or ()
                if (r := topic_resource(None, t.topic_id, resolve)) in plans}
        codec, ctx = self.s.codec, self._response_context
        limit = self.s.config.limits.max_decompressed_bytes
        size = sum(len(p.records or b"") for t in body.responses or () if t.topic_id in keys for p in t.partitions or ())

        def work() -> tuple[bytes, MaskCounts]:
            counts = mask_share_fetch(body, keys, limit)
            return codec.finish_response(request, head, body, ctx), counts

        def done(result: Any) -> None:
            if self.closing:
                return
            if isinstance(result, BaseException):
                log.error("bug: masking a ShareFetch response failed: {e!r}", e=result)
                self._close(f"masking failed, response withheld (fail closed): {type(result).__name__}", abort_upstream=True)
                return
            entry.response, counts = result
            self._count_masking(counts, "consume")
            self._flush()

        self._offload(size, work, done)

    def _probe_answered(self, raw: bytes) -> None:
        try:
            self.s.codec.observe_metadata(raw, 12)
        except CodecError as e:
            self._upstream_broken(f"metadata probe failed: {e}")
            return
        cluster = self.s.cluster
        now = self.s.clock()
        cluster.mark_unknown([i for i in self._probing if cluster.topic_name(i) is None], now + _UNKNOWN_ID_SECONDS)
        self._probing = set()
        waiting, self._waiting_for_ids = self._waiting_for_ids, []
        for then in waiting:
            then()

    @property
    def _response_context(self) -> ResponseContext:
        listener = self.listener
        return ResponseContext(self._address_mapper, self.s.gateway,
                               scope=(listener.name, listener.advertised_host, listener.broker_ports))

    def _address_mapper(self, node_id: int, host: str, port: int) -> tuple[str, int] | None:
        slot = self.s.cluster.slot_of(node_id)
        if slot is None:
            log.error("broker node {node} has no port in listener {listener}'s broker_ports; widen the range",
                      node=node_id, listener=self.listener.name)
            return None
        return self.listener.advertised_host, self.listener.broker_ports[slot]

    def _flush(self) -> None:
        """Answer the client what can be answered in order; then record what the audit trail
        is due (after the answers: the client does not wait for its records)."""
        order = self._order
        if not self._stream_left:
            out: list[bytes] = []
            # Only requests that expect a response are queued, so each waits for its response.
            while order and (response := order[0].response) is not None:
                order.popleft()
                out += (_CID.pack(len(response)), response)
            if out and not self.closing:
                self._write_client(out)
            if self._held and len(order) <= self.s.config.limits.max_pending_requests // 2:
                self._held = False
                self.io.resume_client()
        if self._audit_due:
            self._record_due()
