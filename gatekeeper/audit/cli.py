"""``gatekeeper audit verify|search|replay``: the audit trail from a shell.

SOURCE is a directory of segments, one segment file, or ``kafka:<bootstrap>/<topic>``; with
``--config gatekeeper.yaml`` it may be left out (the configured trail), the checkpoint key is
``audit.hmac_key_file`` and a Kafka trail is read with the ``upstream`` section's SASL and TLS
settings (Gatekeeper's own credentials).

Exit codes: 0 done (verify: the trail verifies); 1 verify found problems (or replay could not
read records back); 2 usage (bad arguments, an unreadable key or config); 3 the trail cannot be
read (no such directory, topic or broker).
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
from pathlib import Path
from typing import Any

from gatekeeper.audit.reader import KafkaSource, ReaderError, iter_records, parse_source, verify
from gatekeeper.audit.records import key_id, parse_time
from gatekeeper.audit.replay import ranges, read_back, session_records, timeline
from gatekeeper.audit.search import Query, format_table, rows
from gatekeeper.values import parse_duration

__all__ = ["add_commands"]

EXIT_PROBLEMS, EXIT_USAGE, EXIT_UNREADABLE = 1, 2, 3


class Usage(Exception):
    """A bad argument, key or config: exit 2 with the message."""


# -- common ------------------------------------------------------------------------------------


def _config(args: argparse.Namespace) -> Any:
    if not getattr(args, "config", None):
        return None
    from gatekeeper.config import ConfigError, load_config

    try:
        return load_config(args.config)
    except ConfigError as e:
        raise Usage("config error: " + "; ".join(e.errors)) from None


def _source(args: argparse.Namespace, config: Any) -> Any:
    if args.source:
        try:
            return parse_source(args.source)
        except ReaderError as e:
            raise Usage(str(e)) from None
    if config is None or config.audit is None:
        raise Usage("no SOURCE: give a directory or kafka:<bootstrap>/<topic>, or --config with an audit section")
    if config.audit.sink == "file":
        return parse_source(str(config.audit.directory))
    if config.audit.sink == "kafka":
        return KafkaSource(",".join(str(s) for s in config.upstream.bootstrap_servers), config.audit.topic)
    raise Usage(f"the configured audit sink {config.audit.sink!r} is a plugin: give its SOURCE")


def _kafka_settings(config: Any, source: Any) -> dict[str, Any] | None:
    if config is None or not isinstance(source, KafkaSource):
        return None
    from gatekeeper.audit.kafka_settings import client_settings
    from gatekeeper.identity.secrets import SecretError, read_password

    sasl = config.upstream.sasl
    try:
        credentials = None if sasl is None else (sasl.mechanism, sasl.username, read_password(sasl))
    except SecretError as e:
        raise Usage(str(e)) from None
    return client_settings(config.upstream, credentials, bootstrap=source.bootstrap)


def _when(text: str | None) -> float | None:
    """RFC 3339 (or a date), or a duration back from now (``15m``, ``2h``)."""
    if text is None:
        return None
    try:
        return time.time() - parse_duration(text)
    except ValueError:
        pass
    try:
        return parse_time(text)
    except ValueError:
        raise Usage(f"{text!r}: expected a time (2026-11-22T10:00:00Z, 2026-11-22) or a duration back "
                    "from now (30s, 15m, 2h)") from None


def _run(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            return int(fn(args))
        except Usage as e:
            print(f"gatekeeper: {e}", file=sys.stderr)
            return EXIT_USAGE
        except ReaderError as e:
            print(f"gatekeeper: cannot read the trail: {e}", file=sys.stderr)
            return EXIT_UNREADABLE
    return run


def _source_args(p: argparse.ArgumentParser, positional: bool = True) -> None:
    if positional:
        p.add_argument("source", nargs="?", metavar="SOURCE",
                       help="a directory of segments, a segment file, or kafka:<bootstrap>/<topic> "
                            "(default with --config: the configured trail)")
    p.add_argument("--config", "-c", help="gatekeeper.yaml: the trail, its key and the cluster's credentials")


# -- verify ------------------------------------------------------------------------------------


def _keys(args: argparse.Namespace, config: Any) -> dict[str, bytes] | None:
    keys: dict[str, bytes] = {}
    for name in args.key_file or ():
        try:
            key = Path(name).read_bytes().strip()
        except OSError as e:
            raise Usage(f"--key-file {name}: {e.strerror or e}") from None
        if not key:
            raise Usage(f"--key-file {name} is empty")
        keys[key_id(key)] = key
    if config is not None and config.audit is not None and config.audit.hmac_key:
        keys[key_id(config.audit.hmac_key)] = config.audit.hmac_key
    if not keys and not args.unsigned:
        raise Usage("no checkpoint key: pass --key-file FILE (audit.hmac_key_file) or --config; "
                    "--unsigned checks the chain alone, which does not show a rewrite")
    return keys or None


def _verify(args: argparse.Namespace) -> int:
    config = _config(args)
    source = _source(args, config)
    keys = _keys(args, config)
    report = verify(source, keys, partial=args.partial, closed=args.closed,
                    kafka_settings=_kafka_settings(config, source))
    if args.json:
        print(json.dumps({
            "ok": report.ok, "records": report.records,
            "chains": [{"chain": c.chain, "instance": c.instance, "first_seq": c.first_seq, "last_seq": c.last_seq,
                        "records": c.records, "checkpoints": c.checkpoints,
                        "last_checkpoint_seq": c.last_checkpoint_seq, "closed": c.closed, "unsigned": c.unsigned}
                       for c in report.chains],
            "problems": [{"where": p.where, "chain": p.chain, "seq": p.seq, "message": p.message}
                         for p in report.problems],
            "notes": list(report.notes)}, indent=2, sort_keys=True))
        return 0 if report.ok else EXIT_PROBLEMS
    for problem in report.problems:
        print(f"FAIL {problem}")
    for note in report.notes:
        print(f"note: {note}")
    chains = len(report.chains)
    if report.ok:
        print(f"ok {report.records} records in {chains} chain{'s' if chains != 1 else ''}")
        return 0
    print(f"FAILED: {len(report.problems)} problem(s) in {report.records} records, {chains} chain(s)")
    return EXIT_PROBLEMS


# -- search ------------------------------------------------------------------------------------


def _query(args: argparse.Namespace) -> Query:
    rtype = rname = None
    if args.resource:
        rtype, sep, rname = args.resource.partition(":")
        if not sep or not rtype or not rname:
            raise Usage(f"--resource {args.resource!r}: expected TYPE:NAME (topic:orders, group:billing)")
    if args.topic:
        rtype, rname = "topic", args.topic
    if args.group:
        rtype, rname = "group", args.group
    return Query(principal=args.principal, resource_type=rtype, resource_name=rname, operation=args.operation,
                 action=args.action, session=args.session, kinds=tuple(args.kind or ()),
                 since=_when(args.since), until=_when(args.until))


def _search(args: argparse.Namespace) -> int:
    config = _config(args)
    source = _source(args, config)
    query = _query(args)
    records = iter_records(source, query.since, query.until, kafka_settings=_kafka_settings(config, source))
    if args.json:
        seen = set()
        n = 0
        for row in rows(query, records):
            ident = (row.record.get("chain"), row.record.get("seq"))
            if ident in seen:
                continue
            seen.add(ident)
            print(json.dumps(row.record, sort_keys=True, ensure_ascii=False))
            n += 1
            if args.limit and n >= args.limit:
                break
        return 0
    found = list(rows(query, records, limit=args.limit or None))
    if not found:
        print("no matching records")
        return 0
    for line in format_table(found):
        print(line)
    return 0


# -- replay ------------------------------------------------------------------------------------


def _consumer_settings(args: argparse.Namespace) -> dict[str, Any]:
    settings: dict[str, Any] = {"bootstrap_servers": args.bootstrap, "client_id": args.client_id or "gatekeeper-replay"}
    protocol = "SSL" if args.cacert else "PLAINTEXT"
    if args.cacert:
        import ssl

        settings["ssl_context"] = ssl.create_default_context(cafile=args.cacert)
    if args.token_file:
        from gatekeeper.audit.tokens import FileTokenProvider

        settings.update(sasl_mechanism="OAUTHBEARER", sasl_oauth_token_provider=FileTokenProvider(args.token_file))
        protocol = "SASL_" + protocol
    elif args.username:
        if not args.password_file:
            raise Usage("--username needs --password-file")
        try:
            password = Path(args.password_file).read_text().strip()
        except OSError as e:
            raise Usage(f"--password-file {args.password_file}: {e.strerror or e}") from None
        settings.update(sasl_mechanism=args.sasl_mechanism, sasl_plain_username=args.username,
                        sasl_plain_password=password)
        protocol = "SASL_" + protocol
    settings["security_protocol"] = protocol
    return settings


def _bytes(value: bytes | None) -> Any:
    if value is None:
        return None
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return {"base64": base64.b64encode(value).decode()}


def _replay(args: argparse.Namespace) -> int:
    config = _config(args)
    source = _source(args, config)
    records = session_records(iter_records(source, kafka_settings=_kafka_settings(config, source)), args.session)
    if not records:
        print(f"no records of session {args.session}")
        return EXIT_PROBLEMS
    if not args.records:
        if args.json:
            for r in records:
                print(json.dumps(r, sort_keys=True, ensure_ascii=False))
        else:
            for line in timeline(records):
                print(line)
        return 0
    if not args.bootstrap:
        raise Usage("--records needs --bootstrap HOST:PORT (Gatekeeper's listener: the records are read with your "
                    "identity, under today's policy)")
    wanted = ranges(records)
    if not wanted:
        print(f"session {args.session} produced or fetched no records")
        return 0
    from kafka.errors import KafkaError

    failed = False
    try:
        for item in read_back(wanted, _consumer_settings(args), timeout=args.timeout):
            rng = item.range
            if item.missing:
                failed = True
                print(f"{rng.direction} {rng.topic}[{rng.partition}] offsets {item.offset}..{rng.last}: not returned "
                      "(past retention, compacted, or not readable by you)", file=sys.stderr)
                continue
            if args.json:
                print(json.dumps({"direction": rng.direction, "topic": rng.topic, "partition": rng.partition,
                                  "offset": item.offset, "timestamp": item.timestamp, "key": _bytes(item.key),
                                  "value": _bytes(item.value),
                                  "headers": [[k, _bytes(v)] for k, v in item.headers]}, ensure_ascii=False))
            else:
                print(f"{rng.direction} {rng.topic}[{rng.partition}]@{item.offset} key={_bytes(item.key)!r} "
                      f"value={_bytes(item.value)!r}")
    except KafkaError as e:
        print(f"gatekeeper: reading the records back failed: {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_PROBLEMS
    return EXIT_PROBLEMS if failed else 0


# -- the parser --------------------------------------------------------------------------------


def add_commands(sub: Any) -> None:
    """Add ``audit`` to the ``gatekeeper`` command's subparsers."""
    audit = sub.add_parser("audit", help="verify, search and replay the audit trail")
    asub = audit.add_subparsers(dest="audit_command", required=True)

    p = asub.add_parser("verify", help="check the trail's hash chains and signed checkpoints")
    _source_args(p)
    p.add_argument("--key-file", action="append", help="a checkpoint key (audit.hmac_key_file); repeat for old keys")
    p.add_argument("--unsigned", action="store_true", help="no key: check the chains only (a rewrite goes unseen)")
    p.add_argument("--partial", action="store_true", help="chains may start after seq 0 (the start was archived or "
                                                          "is past the topic's retention)")
    p.add_argument("--closed", action="store_true", help="every chain must end with a stop checkpoint")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run(_verify))

    p = asub.add_parser("search", help="find records by principal, resource, operation, action, session or time")
    _source_args(p)
    p.add_argument("--principal", help="the principal's sub")
    p.add_argument("--topic")
    p.add_argument("--group")
    p.add_argument("--resource", help="TYPE:NAME (topic:orders, group:billing, transactional_id:tx, cluster:kafka-cluster)")
    p.add_argument("--operation", help="produce, consume, create_topic … (docs/policy-input.md)")
    p.add_argument("--action", choices=["allow", "deny", "mask", "approve"])
    p.add_argument("--session")
    p.add_argument("--kind", action="append", help="record kind (repeatable): request, authentication, session_start …")
    p.add_argument("--since", help="RFC 3339 time or a duration back from now (15m, 2h)")
    p.add_argument("--until", help="RFC 3339 time or a duration back from now")
    p.add_argument("--limit", type=int, default=0, help="at most this many rows")
    p.add_argument("--json", action="store_true", help="the matching records, one JSON per line")
    p.set_defaults(func=_run(_search))

    p = asub.add_parser("replay", help="a session's timeline; with --records the records it produced or consumed")
    p.add_argument("session", metavar="SESSION")
    _source_args(p)
    p.add_argument("--records", action="store_true",
                   help="read the session's records back from the cluster, through Gatekeeper, as yourself")
    p.add_argument("--bootstrap", help="HOST:PORT of Gatekeeper's listener")
    p.add_argument("--client-id", help="the client id to connect with")
    p.add_argument("--token-file", help="a file holding your bearer token (SASL OAUTHBEARER)")
    p.add_argument("--username", help="SASL user (PLAIN or SCRAM)")
    p.add_argument("--password-file")
    p.add_argument("--sasl-mechanism", default="PLAIN", choices=["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"])
    p.add_argument("--cacert", help="a CA bundle: connect with TLS")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for records (default 10)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_run(_replay))
