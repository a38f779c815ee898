"""Pulsar admin REST calls in the audit trail, through ``twistd gatekeeper`` with a
``pulsar-admin`` listener only (no top-level ``upstream`` section) in front of a real Pulsar
standalone broker: an allowed create, a denied delete, a filtered listing and a refused token,
then ``gatekeeper audit verify``, ``search``, ``replay`` and ``policy what-if`` over the trail."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gatekeeper.audit import iter_records
from harness.waiting import wait_for
from tests.integration.test_pulsar_admin import NS, AdminGateway, RecordingRelay, _name, call

pytest.importorskip("gatekeeper_pulsar.admin_auditing", reason="the gatekeeper-pulsar plugin distribution is not installed")

pytestmark = pytest.mark.integration

SCHEMA = jsonschema.Draft202012Validator(
    json.loads(resources.files("gatekeeper").joinpath("schemas/audit-record.schema.json").read_text()))


@pytest.fixture(scope="module")
def audited(pulsar_broker: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    work = tmp_path_factory.mktemp("pulsar-admin-audit")
    relay = RecordingRelay(("127.0.0.1", pulsar_broker.web_port))
    gw = AdminGateway(work, pulsar_broker, relay)
    raw = yaml.safe_load(gw.config_path.read_text())
    del raw["upstream"]  # a pulsar-admin listener fronts options.admin_url: no top-level upstream needed
    key = work / "audit.key"
    key.write_bytes(b"pulsar-admin-audit-test-key-0123")
    key.chmod(0o600)
    raw["audit"] = {"directory": str(work / "trail"), "hmac_key_file": str(key), "instance": "gk-padmin",
                    "checkpoint_interval": "1s"}
    gw.config_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    try:
        with gw:
            gw.trail, gw.key, gw.work = work / "trail", key, work  # type: ignore[attr-defined]
            yield gw
    finally:
        relay.close()


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gatekeeper.cli", *args], capture_output=True, text=True, timeout=120)


def _rows(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_admin_calls_are_recorded_and_the_audit_tools_read_them(audited: Any, pulsar_broker: Any) -> None:
    assert "upstream" not in yaml.safe_load(audited.config_path.read_text())
    created, ledger = _name("audited"), _name("ledger")
    full, ledger_full = f"persistent://public/default/{created}", f"persistent://public/default/{ledger}"
    pulsar_broker.admin("PUT", f"{NS}/{ledger}")
    assert call(audited, "PUT", f"{NS}/{created}", "svc-admin")[0] == 204
    status, body = call(audited, "DELETE", f"{NS}/{ledger}", "svc-admin")
    assert status == 403 and "immutable" in body["reason"]
    status, names = call(audited, "GET", NS, "svc-viewer")
    assert status == 200 and full not in names  # filtered: the viewer may not describe it
    assert call(audited, "GET", NS, None, token="not-a-jwt")[0] == 401
    trail = audited.trail

    def ours() -> list[dict[str, Any]]:
        return [r for r in iter_records(trail) if r["kind"] == "request" and r.get("api", {}).get("key") == 0
                and r["api"]["version"] == 2]

    def all_ended() -> bool:
        sessions = {r["session"] for r in ours()}
        ended = {r["session"] for r in iter_records(trail) if r["kind"] == "session_end"}
        return len(ours()) >= 4 and sessions <= ended

    wait_for(all_ended, timeout=30, what="the admin calls' records and their sessions' ends in the trail")
    records = list(iter_records(trail))
    for r in records:
        SCHEMA.validate(r)
    assert "eyJ" not in json.dumps(records), "a token went into the trail"
    requests = ours()
    by_resource = {r["operations"][0]["input"]["resource"]["name"]: r for r in requests if r["operations"]}
    create, delete = by_resource[full], by_resource[ledger_full]
    assert create["principal"]["sub"] == "svc-admin" and create["operations"][0]["input"]["operation"] == "create_topic"
    assert create["operations"][0]["decision"]["action"] == "allow"
    assert create["operations"][0]["enforced"] == {"result": "forwarded"}
    assert create["outcome"] == {"from": "broker", "status": 204} and create["latency_ms"] > 0
    assert delete["operations"][0]["decision"]["action"] == "deny"
    assert delete["operations"][0]["enforced"] == {"result": "denied", "error_code": 403}
    assert delete["outcome"]["from"] == "gatekeeper" and delete["outcome"]["status"] == 403
    listing = by_resource["public/default"]
    assert listing["principal"]["sub"] == "svc-viewer"
    assert [o["input"]["operation"] for o in listing["operations"]] == ["list_topics"]
    assert listing["outcome"] == {"from": "broker", "status": 200}
    (refused,) = [r for r in requests if not r["operations"]]
    assert refused["principal"] is None and refused["outcome"]["status"] == 401
    # Each call came on a connection of its own (urllib): a session with its start, login and end.
    for r in (create, delete, listing):
        kinds = [x["kind"] for x in records if x.get("session") == r["session"]]
        assert kinds == ["session_start", "authentication", "request", "session_end"], kinds
        login = next(x for x in records if x.get("session") == r["session"] and x["kind"] == "authentication")
        assert login["result"] == "success" and login["token"]["exp"] is not None
        assert login["principal"]["sub"] == r["principal"]["sub"]
    failed = [x for x in records if x.get("session") == refused["session"] and x["kind"] == "authentication"]
    assert [x["result"] for x in failed] == ["failure"] and failed[0]["reason"].startswith("token refused")

    verified = _cli("audit", "verify", str(trail), "--key-file", str(audited.key))
    assert verified.returncode == 0 and verified.stdout.splitlines()[-1].startswith("ok"), verified.stdout + verified.stderr
    found = _cli("audit", "search", str(trail), "--principal", "svc-admin", "--topic", full, "--json")
    assert found.returncode == 0, found.stderr
    assert [(r["operations"][0]["decision"]["action"], r["outcome"]["status"]) for r in _rows(found.stdout)] == [("allow", 204)]
    denied = _cli("audit", "search", str(trail), "--operation", "delete_topic", "--action", "deny", "--json")
    assert [r["operations"][0]["input"]["resource"]["name"] for r in _rows(denied.stdout)] == [ledger_full]
    listed = _cli("audit", "search", str(trail), "--principal", "svc-viewer", "--operation", "list_topics", "--json")
    assert [r["session"] for r in _rows(listed.stdout)] == [listing["session"]]
    replay = _cli("audit", "replay", delete["session"], str(trail))
    assert replay.returncode == 0, replay.stdout + replay.stderr
    assert "delete_topic" in replay.stdout and "svc-admin" in replay.stdout

    since = min(r["time"] for r in requests)
    same = _cli("policy", "what-if", "--policies", str(Path(audited.work) / "policies"), "--audit", str(trail),
                "--since", since, "--json")
    assert same.returncode == 0, same.stdout + same.stderr
    candidate = Path(audited.work) / "candidate"
    candidate.mkdir(exist_ok=True)
    (candidate / "deny_all.rego").write_text('package gatekeeper\n\ndecision := {"action": "deny", "reason": "frozen"}\n')
    changed = _cli("policy", "what-if", "--policies", str(candidate), "--audit", str(trail), "--since", since, "--json")
    assert changed.returncode == 1, changed.stdout + changed.stderr
    changes = {(c["before"], c["after"], c["operation"], c["resource"]) for c in json.loads(changed.stdout)["changes"]}
    assert ("allow", "deny", "create_topic", f"topic {full}") in changes
    assert all(c[3] != f"topic {ledger_full}" for c in changes)
