"""``gatekeeper approvals …`` and ``gatekeeper grants …``: the approvals HTTP API from a shell.

Blocking HTTP (urllib) is right here: the CLI is a short-lived process, not the reactor. The
API's URL comes from ``--url`` or ``$GATEKEEPER_APPROVALS_URL``, the bearer token from
``--token-file`` or ``$GATEKEEPER_TOKEN``.

Exit codes: 0 done; 1 the API refused (403, 404, 409, 400); 2 usage (no URL or token, bad
arguments); 3 the API could not be reached or failed (connection, TLS, 5xx); 4 the token was
refused (401).
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

__all__ = ["ApiClient", "ApiFailure", "add_commands"]

URL_ENV = "GATEKEEPER_APPROVALS_URL"
TOKEN_ENV = "GATEKEEPER_TOKEN"

EXIT_REFUSED, EXIT_USAGE, EXIT_UNREACHABLE, EXIT_UNAUTHENTICATED = 1, 2, 3, 4


class ApiFailure(Exception):
    """A call that did not succeed: ``code`` is the exit code, ``message`` what to print."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


class ApiClient:
    """A small blocking client of the approvals API (``/api/v1``)."""

    def __init__(self, url: str, token: str, *, cafile: str | None = None, timeout: float = 30.0) -> None:
        self.base = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.context = ssl.create_default_context(cafile=cafile) if self.base.startswith("https:") else None

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             query: dict[str, str] | None = None) -> Any:
        url = self.base + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self.token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout, context=self.context) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            raise _refusal(e) from None
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ApiFailure(EXIT_UNREACHABLE, f"cannot reach the approvals API at {self.base}: {reason}") from None
        except ValueError as e:
            raise ApiFailure(EXIT_UNREACHABLE, f"the approvals API at {self.base} answered something that is not JSON: {e}") from None


def _refusal(e: urllib.error.HTTPError) -> ApiFailure:
    try:
        body = json.loads(e.read() or b"{}")
    except ValueError:
        body = {}
    reason = body.get("reason") if isinstance(body, dict) else None
    what = f"{e.code} {body.get('error', e.reason) if isinstance(body, dict) else e.reason}"
    message = f"{what}: {reason}" if reason else what
    if e.code == 401:
        return ApiFailure(EXIT_UNAUTHENTICATED, f"{message} (get a fresh token and pass it with --token-file or ${TOKEN_ENV})")
    if e.code >= 500:
        return ApiFailure(EXIT_UNREACHABLE, message)
    return ApiFailure(EXIT_REFUSED, message)


# -- output -----------------------------------------------------------------------------------


def _who(p: dict[str, Any] | None) -> str:
    return "-" if not p else str(p.get("sub", "?"))


def _res(r: dict[str, Any] | None) -> str:
    return "-" if not r else f"{r.get('type')}:{r.get('name')}"


def _time(iso: str | None) -> str:
    if not iso:
        return "-"
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def _clean(value: Any) -> str:
    """A value for a terminal: control characters (escape sequences) shown, not obeyed."""
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in str(value))


def _table(rows: list[list[str]], header: list[str], out: TextIO) -> None:
    rows = [[_clean(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    for row in [header, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), file=out)


def print_requests(requests: list[dict[str, Any]], out: TextIO) -> None:
    if not requests:
        print("no requests", file=out)
        return
    _table([[r["id"], r["status"], _who(r.get("requester")), r.get("operation", "-"), _res(r.get("resource")),
             _time(r.get("created_at")), "yes" if r.get("viewer", {}).get("may_decide") else "no"] for r in requests],
           ["ID", "STATUS", "REQUESTER", "OPERATION", "RESOURCE", "ASKED", "YOU MAY DECIDE"], out)


def print_request(r: dict[str, Any], out: TextIO) -> None:
    lines = [
        ("id", r["id"]), ("status", r["status"]), ("requester", _who(r.get("requester"))),
        ("requester groups", ", ".join(r.get("requester", {}).get("groups", [])) or "-"),
        ("operation", r.get("operation")), ("resource", _res(r.get("resource"))), ("why", r.get("reason") or "-"),
        ("approvers", ", ".join(r.get("approvers", [])) or "-"), ("approvals needed", r.get("approvals_required", 1)),
        ("asked", _time(r.get("created_at"))), ("expires", _time(r.get("expires_at"))),
        ("decided", _time(r.get("decided_at"))),
    ]
    client = r.get("client") or {}
    lines.append(("client", f"{client.get('id') or '-'} from {client.get('address') or '-'}"))
    for v in r.get("votes", []):
        lines.append(("vote", f"{v.get('verdict')} by {v.get('sub')} at {_time(v.get('at'))}: {v.get('reason')}"))
    viewer = r.get("viewer", {})
    lines.append(("you may decide", "yes" if viewer.get("may_decide") else f"no ({viewer.get('why_not') or '-'})"))
    for k, v in lines:
        print(f"{k + ':':<18}{_clean(v)}", file=out)


def print_grants(grants: list[dict[str, Any]], out: TextIO) -> None:
    if not grants:
        print("no grants", file=out)
        return
    _table([[g["id"], _who(g.get("principal")), g.get("operation", "-"), _res(g.get("resource")),
             ", ".join(g.get("approved_by", [])) or "-", _time(g.get("expires_at")),
             "live" if g.get("live") else ("revoked" if g.get("revoked_at") else "ended")] for g in grants],
           ["ID", "PRINCIPAL", "OPERATION", "RESOURCE", "APPROVED BY", "EXPIRES", "STATE"], out)


# -- commands ---------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> ApiClient:
    url = args.url or os.environ.get(URL_ENV)
    if not url:
        raise ApiFailure(EXIT_USAGE, f"no approvals API URL: pass --url or set ${URL_ENV} (e.g. https://gatekeeper.example:9443)")
    if not url.startswith(("http://", "https://")):
        raise ApiFailure(EXIT_USAGE, f"--url {url!r}: expected an http:// or https:// URL")
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as e:
            raise ApiFailure(EXIT_USAGE, f"cannot read --token-file {args.token_file}: {e.strerror or e}") from None
    else:
        token = os.environ.get(TOKEN_ENV, "").strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    if not token:
        raise ApiFailure(EXIT_USAGE, f"no token: pass --token-file FILE or set ${TOKEN_ENV}")
    return ApiClient(url, token, cafile=args.cacert, timeout=args.timeout)


def _reason(args: argparse.Namespace) -> dict[str, str]:
    reason = args.reason.strip()
    if not reason:
        raise ApiFailure(EXIT_USAGE, "--reason must not be empty: say why, it goes into the audit trail")
    return {"reason": reason}


def _out(args: argparse.Namespace, data: Any, printer: Any) -> None:
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True))
    else:
        printer(data, sys.stdout)


def _approvals_list(args: argparse.Namespace) -> None:
    query = {"mine": "true"} if args.mine else {}
    if args.status:
        query["status"] = args.status
    data = _client(args).call("GET", "/api/v1/requests", query=query)
    _out(args, data["requests"] if not args.json else data, print_requests)


def _approvals_show(args: argparse.Namespace) -> None:
    _out(args, _client(args).call("GET", f"/api/v1/requests/{_quote(args.id)}"), print_request)


def _decide(verdict: str) -> Any:
    def run(args: argparse.Namespace) -> None:
        r = _client(args).call("POST", f"/api/v1/requests/{_quote(args.id)}/{verdict}", _reason(args))
        if args.json:
            print(json.dumps(r, indent=2, sort_keys=True))
        else:
            print(f"request {_clean(r['id'])}: {r['status']}")
    return run


def _grants_list(args: argparse.Namespace) -> None:
    data = _client(args).call("GET", "/api/v1/grants", query={"live": "false" if args.all else "true"})
    _out(args, data["grants"] if not args.json else data, print_grants)


def _grants_revoke(args: argparse.Namespace) -> None:
    g = _client(args).call("POST", f"/api/v1/grants/{_quote(args.id)}/revoke", _reason(args))
    if args.json:
        print(json.dumps(g, indent=2, sort_keys=True))
    else:
        print(f"grant {_clean(g['id'])}: revoked")


def _quote(ident: str) -> str:
    return urllib.parse.quote(ident, safe="")


def _run(fn: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            fn(args)
        except ApiFailure as e:
            print(f"gatekeeper: {e.message}", file=sys.stderr)
            return e.code
        return 0
    return run


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help=f"the approvals API, e.g. https://gatekeeper.example:9443 (default ${URL_ENV})")
    p.add_argument("--token-file", help=f"a file holding your bearer token (default ${TOKEN_ENV})")
    p.add_argument("--cacert", help="a CA bundle to verify the API's TLS certificate with")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for the API (default 30)")
    p.add_argument("--json", action="store_true", help="print the API's JSON")


def add_commands(sub: Any) -> None:
    """Add ``approvals`` and ``grants`` to the ``gatekeeper`` command's subparsers."""
    approvals = sub.add_parser("approvals", help="list, show, approve and deny approval requests")
    asub = approvals.add_subparsers(dest="approvals_command", required=True)
    p = asub.add_parser("list", help="requests you may see: yours and those you may approve")
    p.add_argument("--mine", action="store_true", help="only your own requests (find your approval id)")
    p.add_argument("--status", choices=["pending", "approved", "denied", "expired"])
    _common(p)
    p.set_defaults(func=_run(_approvals_list))
    p = asub.add_parser("show", help="one request in full")
    p.add_argument("id")
    _common(p)
    p.set_defaults(func=_run(_approvals_show))
    for verdict in ("approve", "deny"):
        p = asub.add_parser(verdict, help=f"{verdict} a pending request")
        p.add_argument("id")
        p.add_argument("--reason", required=True, help="why (kept in the audit trail)")
        _common(p)
        p.set_defaults(func=_run(_decide(verdict)))
    grants = sub.add_parser("grants", help="list and revoke grants")
    gsub = grants.add_subparsers(dest="grants_command", required=True)
    p = gsub.add_parser("list", help="live grants you may see")
    p.add_argument("--all", action="store_true", help="ended and revoked grants too")
    _common(p)
    p.set_defaults(func=_run(_grants_list))
    p = gsub.add_parser("revoke", help="end a grant now")
    p.add_argument("id")
    p.add_argument("--reason", required=True, help="why (kept in the audit trail)")
    _common(p)
    p.set_defaults(func=_run(_grants_revoke))
