"""The gateway's token validation: a JwtValidator and where its keys come from.

The JWKS is read from ``jwks_file`` or fetched from ``jwks_url`` — at start, on SIGHUP, every
five minutes for a URL, and when a token names an unknown ``kid`` (at most every 10 s). Reading
and fetching happen off the reactor thread (a thread for the file, treq for the URL), and so do
parsing the JSON and building the keys (a JWKS of thousands of keys takes a tenth of a second
and more: on the reactor, every connection would wait that long); only the finished key table
is swapped in on the reactor.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import task, threads
from twisted.logger import Logger

from gatekeeper.config.values import JwtSettings
from gatekeeper.identity.jwt_validator import (
    JwtConfig,
    JwtValidator,
    ValidatedToken,
    keys_from_jwks,
    load_jwks_file,
    parse_jwks,
)

__all__ = ["IdentityService"]

log = Logger()
_MIN_REFRESH_INTERVAL = 10.0


class IdentityService:
    def __init__(self, settings: JwtSettings, reactor: Any) -> None:
        self.settings = settings
        self.reactor = reactor
        cfg = JwtConfig(settings.issuer, settings.audience, settings.algorithms, settings.principal_claim,
                        settings.groups_claim, settings.leeway, settings.max_token_bytes)
        initial = load_jwks_file(str(settings.jwks_file)) if settings.jwks_file else {"keys": []}
        self.validator = JwtValidator(cfg, initial, on_unknown_kid=self._unknown_kid)
        self._last_refresh = reactor.seconds()
        self._loop: task.LoopingCall | None = None
        if settings.jwks_url:
            self._loop = task.LoopingCall(self.refresh_jwks)
            self._loop.clock = reactor
            self._loop.start(300.0, now=True)

    def validate(self, token: str, mechanism: str) -> ValidatedToken:
        return self.validator.validate(token, self.reactor.seconds(), mechanism)

    def _unknown_kid(self) -> None:
        if self.reactor.seconds() - self._last_refresh >= _MIN_REFRESH_INTERVAL:
            self.refresh_jwks()

    def refresh_jwks(self) -> Any:
        self._last_refresh = self.reactor.seconds()
        pool = self.reactor.getThreadPool()
        d: Any
        if self.settings.jwks_file:
            path = str(self.settings.jwks_file)
            d = threads.deferToThreadPool(self.reactor, pool, lambda: _keys(load_jwks_file(path)))
        else:
            import treq

            url = self.settings.jwks_url
            assert url is not None
            d = treq.get(url, timeout=10).addCallback(treq.content)
            d.addCallback(lambda body: threads.deferToThreadPool(self.reactor, pool, lambda: _keys(parse_jwks(body, url))))
        d.addCallback(self._got)
        d.addErrback(lambda f: log.error("JWKS refresh failed, the previous keys stay: {err}", err=f.getErrorMessage()))
        return d

    def _got(self, loaded: tuple[int, dict[str, Any]]) -> None:
        n, keys = loaded
        self.validator.set_keys(keys)
        log.info("JWKS loaded: {n} key(s)", n=n)

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()


def _keys(jwks: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(keys in the document, signing keys by kid): run in a thread."""
    return len(jwks.get("keys", [])), keys_from_jwks(jwks)
