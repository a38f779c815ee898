"""``gatekeeper policy what-if`` and ``gatekeeper policy fixtures``: the audit trail read, the
candidate loaded, the report printed. Exit status: what-if 0 when no decision would change, 1
when some would, 2 when it cannot tell (policies that do not load, a trail it cannot read);
fixtures 0 when written, 2 on the same errors."""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from gatekeeper.logsafe import printable
from gatekeeper.policy.loading import PolicyLoadError
from gatekeeper.policy.recorded import RecordedDecisions
from gatekeeper.values import parse_duration

__all__ = ["add_parsers", "fixtures_main", "parse_when", "what_if_main"]

_DECISION_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(/[A-Za-z_][A-Za-z0-9_]*)*")


class TrailError(Exception):
    """The audit trail cannot be read (the operator's path, or a damaged trail)."""


class Usage(Exception):
    """A bad argument or config: the operator's; exit 2 with the message."""


def add_parsers(psub: Any) -> None:
    p = psub.add_parser(
        "what-if",
        help="replay recorded policy inputs from the audit trail against candidate policies",
        description="Replay the policy inputs an audit trail recorded against candidate policies and "
        "report every decision that would change. Exit status 0: none would; 1: some would; 2: error.",
    )
    p.add_argument("--policies", required=True, help="the candidate policies directory")
    p.add_argument("--data", help="the candidate data document (default: DIR/data.json if there is one)")
    p.add_argument("--decision", help="data path of the decision rule (default: the config's, else gatekeeper/decision)")
    _trail_args(p)
    p.add_argument("--engine", choices=("embedded", "opa"), default="embedded",
                   help="embedded (default, in-process) or opa (the server at --url)")
    p.add_argument("--url", help="with --engine opa: a scratch OPA server; the candidate policies are pushed to it")
    p.add_argument("--details", action="store_true",
                   help="also report decisions whose verdict stays but whose reason, mask or approval terms change")
    p.add_argument("--examples", type=int, default=3, metavar="N", help="example session ids per change (default 3)")
    p.add_argument("--json", action="store_true", help="the report as JSON")
    p.set_defaults(func=what_if_main)
    p = psub.add_parser(
        "fixtures",
        help="write recorded policy inputs and decisions as opa test fixtures",
        description="Write the distinct policy inputs an audit trail recorded, and the decisions made on "
        "them, as a JSON data file and a generated *_test.rego: `opa test POLICIES OUT` passes against "
        "the policies that made them and fails where a decision changes.",
    )
    _trail_args(p)
    p.add_argument("--out", required=True, help="directory to write the fixtures to")
    p.add_argument("--decision", help="data path of the decision rule (default: the config's, else gatekeeper/decision)")
    p.add_argument("--revision", help="use the decisions of this policy revision (default: the last in the trail)")
    p.add_argument("--max-cases", type=int, default=2000, metavar="N", help="at most N cases (default 2000)")
    p.set_defaults(func=fixtures_main)


def _trail_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--audit", metavar="SOURCE",
                   help="the audit trail: a file sink's directory, one segment file, or kafka:<bootstrap>/<topic> "
                        "(default with --config: the configured trail)")
    p.add_argument("--config", "-c", metavar="FILE",
                   help="gatekeeper.yaml: its audit trail, the cluster credentials to read a kafka trail with, "
                        "and its policy.decision path")
    p.add_argument("--since", help="only records since then: a duration back from now (24h, 30m, 7d) or an RFC 3339 time")
    p.add_argument("--until", help="only records until then: a duration back from now or an RFC 3339 time")


def parse_when(text: str, now: float) -> float:
    """``24h`` (back from ``now``), ``7d``, or an RFC 3339 time → seconds since the epoch."""
    from datetime import UTC, datetime

    text = text.strip()
    try:
        if text.endswith("d") and text[:-1].replace(".", "", 1).isdigit():
            return now - float(text[:-1]) * 86400
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is neither a duration (24h, 30m, 7d) nor an RFC 3339 time") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


class TrailReader:
    """The records of the trail at ``source`` within [since, until], through
    ``gatekeeper.audit.reader``; counts the stored lines that are not records (``gatekeeper
    audit verify`` says what is wrong with them)."""

    def __init__(self, source: str, since: float | None, until: float | None,
                 kafka_settings: Mapping[str, Any] | None = None) -> None:
        self.source, self.since, self.until, self.kafka_settings = source, since, until, kafka_settings
        self.damaged: list[str] = []

    def __iter__(self) -> Iterator[Mapping[str, Any]]:
        from gatekeeper.audit.reader import ReaderError, iter_entries

        try:
            for entry in iter_entries(self.source, self.since, self.until, kafka_settings=self.kafka_settings):
                if entry.record is None:
                    self.damaged.append(entry.where)
                else:
                    yield entry.record
        except ReaderError as e:
            raise TrailError(str(e)) from e


def _config(args: argparse.Namespace) -> Any:
    if not args.config:
        return None
    from gatekeeper.config import ConfigError, load_config

    try:
        return load_config(args.config)
    except ConfigError as e:
        raise Usage(f"{args.config}: config error: " + "; ".join(e.errors)) from None


def _trail(args: argparse.Namespace, config: Any) -> TrailReader:
    """The trail ``--audit`` (or the config's) names, within ``--since``/``--until``."""
    from gatekeeper.audit.reader import KafkaSource, ReaderError, parse_source

    source = args.audit
    if source is None:
        audit = None if config is None else config.audit
        if audit is None:
            raise Usage("no audit trail: give --audit SOURCE, or --config with an audit section")
        if audit.sink == "file":
            source = str(audit.directory)
        elif audit.sink == "kafka":
            source = str(KafkaSource(",".join(map(str, config.upstream.bootstrap_servers)), audit.topic))
        else:
            raise Usage(f"the configured audit sink {audit.sink!r} is a plugin: give --audit SOURCE")
    try:
        parsed = parse_source(source)
    except ReaderError as e:
        raise Usage(str(e)) from None
    settings = None
    if config is not None and isinstance(parsed, KafkaSource):
        from gatekeeper.audit.kafka_settings import client_settings
        from gatekeeper.identity.secrets import SecretError, read_password

        sasl = config.upstream.sasl
        try:
            credentials = None if sasl is None else (sasl.mechanism, sasl.username, read_password(sasl))
            settings = client_settings(config.upstream, credentials, bootstrap=parsed.bootstrap)
        except (SecretError, ValueError) as e:
            raise Usage(str(e)) from None
    now = time.time()
    try:
        since = parse_when(args.since, now) if args.since else None
        until = parse_when(args.until, now) if args.until else None
    except ValueError as e:
        raise Usage(f"--since/--until: {e}") from None
    return TrailReader(source, since, until, settings)


def _decision_path(args: argparse.Namespace, config: Any) -> str:
    if args.decision:
        path = str(args.decision)
    elif config is not None and config.policy is not None:
        path = str(config.policy.decision)
    else:
        path = "gatekeeper/decision"
    if not _DECISION_PATH.fullmatch(path.strip("/")):
        raise Usage(f"--decision {path!r}: expected names separated by '/', like gatekeeper/decision")
    return path


def _trail_notes(trail: TrailReader, recorded: RecordedDecisions) -> list[str]:
    notes = []
    if trail.damaged:
        where = ", ".join(trail.damaged[:3]) + (", …" if len(trail.damaged) > 3 else "")
        notes.append(f"{_n(len(trail.damaged), 'stored line')} not an audit record, skipped ({where}); "
                     "gatekeeper audit verify says what is wrong")
    if recorded.malformed:
        notes.append(f"{_n(recorded.malformed, 'recorded operation')} not in the shape of docs/audit.md, skipped")
    return notes


def _n(count: int, thing: str) -> str:
    return f"{count:,} {thing} was" if count == 1 else f"{count:,} {thing}s were"


def _fail(message: str) -> int:
    print(f"gatekeeper: {message}", file=sys.stderr)
    return 2


def _data_path(args: argparse.Namespace) -> Path | None:
    if args.data:
        return Path(args.data)
    default = Path(args.policies) / "data.json"
    return default if default.is_file() else None


def what_if_main(args: argparse.Namespace) -> int:
    if args.engine == "opa" and not args.url:
        return _fail("--engine opa needs --url: a scratch OPA server the candidate policies are pushed to")
    if args.engine == "opa":
        return _with_reactor(lambda reactor: _what_if(args, reactor))
    return _what_if(args, None)


def _with_reactor(fn: Any) -> int:
    """Run ``fn(reactor)`` in a thread while the reactor runs here; its result."""
    from twisted.internet import task, threads

    result: list[int] = []

    def main(reactor: Any) -> Any:
        d = threads.deferToThread(fn, reactor)
        d.addCallback(result.append)
        return d

    try:
        task.react(main)
    except SystemExit as e:
        if e.code not in (0, None):
            return 2
    return result[0] if result else 2


def _what_if(args: argparse.Namespace, reactor: Any) -> int:
    from gatekeeper.policy.candidate import EmbeddedCandidate, OpaCandidate
    from gatekeeper.policy.whatif import WhatIf
    from gatekeeper.policy.whatif_text import render

    policies, data = Path(args.policies), _data_path(args)
    try:
        config = _config(args)
        trail = _trail(args, config)
        decision = _decision_path(args, config)
    except Usage as e:
        return _fail(str(e))
    candidate: Any
    try:
        if reactor is None:
            candidate = EmbeddedCandidate.load(policies, data, decision)
        else:
            candidate = OpaCandidate.start(args.url, policies, data, decision, reactor)
    except Exception as e:  # the policies do not load; OPA down or refusing them
        where = "" if reactor is None else f" into OPA at {args.url}"
        if reactor is None and not isinstance(e, PolicyLoadError):
            raise
        return _fail(f"the candidate policies cannot be loaded{where}: {e}")
    try:
        whatif = WhatIf(candidate, details=args.details, examples=args.examples)
        recorded = RecordedDecisions(trail)
        for r in recorded:
            whatif.add(r.input, r.decision, r.session)
        report = whatif.run()
    except TrailError as e:
        return _fail(f"cannot read the audit trail {trail.source}: {e}")
    except Exception as e:
        if reactor is None:
            raise  # our bug: the traceback helps
        return _fail(f"OPA at {args.url} failed during the replay: {e}")
    finally:
        if reactor is not None:
            candidate.stop()
    notes = _trail_notes(trail, recorded)
    if data is not None and not args.data:
        notes.append(f"data document {data} (the policies directory's data.json)")
    revision = _revision(policies, data)
    same = dict(report.summary.revisions).get(revision or "")
    if same:
        notes.append(f"the candidate is revision {revision}, which made {same:,} of these decisions")
    for clock in candidate.sites.clock:
        notes.append(f"{clock} reads the clock: replayed decisions use the time of the replay, not the recorded time")
    label = f"{policies}" + (f" with {data}" if data else "") + ("" if reactor is None else f" on OPA at {args.url}")
    if args.json:
        out = report.to_json()
        out["candidate"] = {"policies": str(policies), "data": str(data) if data else None, "engine": args.engine,
                            "revision": revision}
        out["notes"] = notes
        print(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        sys.stdout.write(render(report, candidate=printable(label), notes=notes))
    return 1 if report.changed else 0


def _revision(policies: Path, data: Path | None) -> str | None:
    """The candidate's policy revision, as the audit trail records revisions."""
    from gatekeeper.audit.records import policy_revision
    from gatekeeper.policy.loading import read_data, read_modules

    try:
        return policy_revision(read_modules(policies), read_data(data))
    except (PolicyLoadError, OSError):
        return None


def fixtures_main(args: argparse.Namespace) -> int:
    from gatekeeper.policy.fixtures import Fixtures

    fixtures = Fixtures(args.revision)
    try:
        config = _config(args)
        trail = _trail(args, config)
        decision = _decision_path(args, config)
    except Usage as e:
        return _fail(str(e))
    try:
        recorded = RecordedDecisions(trail)
        for r in recorded:
            fixtures.add(r)
    except TrailError as e:
        return _fail(f"cannot read the audit trail {trail.source}: {e}")
    if not fixtures.decisions:
        which = f" of policy revision {args.revision}" if args.revision else ""
        window = " in that window" if args.since or args.until else ""
        return _fail(f"no recorded policy decisions{which} in the audit trail {trail.source}{window}")
    try:
        written = fixtures.write(Path(args.out), decision, args.max_cases)
    except OSError as e:
        return _fail(f"cannot write the fixtures to {args.out}: {e.strerror or e}")
    print(f"wrote {written.cases:,} cases ({written.decisions:,} recorded decisions of policy revision "
          f"{written.revision or '(not recorded)'}) to {', '.join(map(str, written.paths))}")
    if written.left_out_cases:
        print(f"  {written.left_out_cases:,} more distinct cases left out (--max-cases {args.max_cases})")
    if written.other_revisions:
        print(f"  {written.other_revisions:,} recorded decisions of other policy revisions left out")
    if written.not_policy:
        print(f"  {written.not_policy:,} recorded denies that no valid policy decision made (engine failures) left out")
    for note in _trail_notes(trail, recorded):
        print(f"  {note}")
    print(f"  check: opa test <policies> {args.out}")
    return 0
