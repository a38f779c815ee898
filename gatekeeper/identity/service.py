"""The gateway's token validation: a JwtValidator and where its keys come from.

The JWKS is read from ``jwks_file`` or fetched from ``jwks_url`` — at start, on SIGHUP, every
five minutes for a URL, and when a token names an unknown ``kid`` (at most every 10 s). Reading
and fetching happen off the reactor thread (a thread for the file, treq for the URL).
"""

from __future__ import annotations

import json
from typing import Any

from twisted.internet import task, threads
from twisted.logger import Logger

from gatekeeper.config.values import JwtSettings
from gatekeeper.identity.jwt_validator import (
    JwtConfig,
    JwtValidator,
    ValidatedToken,
    load_jwks_file,
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
        if self.settings.jwks_file:
            d = threads.deferToThreadPool(self.reactor, self.reactor.getThreadPool(), load_jwks_file, str(self.settings.jwks_file))
        else:
            import treq

            assert self.settings.jwks_url is not None
            d = treq.get(self.settings.jwks_url, timeout=10).addCallback(treq.content).addCallback(json.loads)
        d.addCallback(self._got)
        d.addErrback(lambda f: log.error("JWKS refresh failed, the previous keys stay: {err}", err=f.getErrorMessage()))
        return d

    def _got(self, jwks: Any) -> None:
        self.validator.set_jwks(jwks)
        log.info("JWKS loaded: {n} key(s)", n=len(jwks.get("keys", [])))

    def stop(self) -> None:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
