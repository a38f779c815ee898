"""Reading Gatekeeper's own secrets from files or environment variables (never from logs)."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

from gatekeeper.config.values import UpstreamSaslConfig

__all__ = ["SecretError", "exposed_secret_files", "read_password"]


class SecretError(Exception):
    """A configured secret cannot be read (the operator's setup). Never contains the secret."""


def read_password(cfg: UpstreamSaslConfig) -> str:
    if cfg.password_file is not None:
        try:
            value = cfg.password_file.read_text().strip()
        except OSError as e:
            raise SecretError(f"upstream.sasl.password_file {cfg.password_file}: {e.strerror}") from e
        if not value:
            raise SecretError(f"upstream.sasl.password_file {cfg.password_file} is empty")
        return value
    if cfg.password_env is not None:
        value = os.environ.get(cfg.password_env, "")
        if not value:
            raise SecretError(f"upstream.sasl.password_env: environment variable {cfg.password_env} is not set")
        return value
    if cfg.password:
        return cfg.password
    raise SecretError("upstream.sasl: no password_file, password_env or password")


def exposed_secret_files(config: Any) -> list[str]:
    """The secret files of ``config`` (broker password, TLS private keys, the masking hash key,
    webhook notifier keys, the audit checkpoint key) that users other than their owner may read: ``"<yaml path> <file> (mode 0644)"`` each, for a
    warning at start."""
    candidates: list[tuple[str, Path | None]] = []
    sasl = config.upstream.sasl
    if sasl is not None:
        candidates.append(("upstream.sasl.password_file", sasl.password_file))
    masking = getattr(config, "masking", None)
    if masking is not None:
        candidates.append(("masking.hash_key_file", masking.hash_key_file))
    audit = getattr(config, "audit", None)
    if audit is not None:
        candidates.append(("audit.hmac_key_file", audit.hmac_key_file))
    approvals = getattr(config, "approvals", None)
    if approvals is not None:
        if approvals.tls is not None:
            candidates.append(("approvals.tls.key_file", approvals.tls.key_file))
        for i, notifier in enumerate(approvals.notifiers):
            secret = notifier.options.get("secret_file")
            if isinstance(secret, str):
                secret_path = Path(secret)
                if not secret_path.is_absolute() and notifier.base is not None:
                    secret_path = notifier.base / secret_path
                candidates.append((f"approvals.notifiers[{i}].secret_file", secret_path))
    if config.upstream.tls is not None:
        candidates.append(("upstream.tls.key_file", config.upstream.tls.key_file))
    for i, listener in enumerate(config.listeners):
        if listener.tls is not None:
            candidates.append((f"listeners[{i}].tls.key_file", listener.tls.key_file))
        upstream_tls = getattr(listener, "upstream_tls", None)
        if upstream_tls is not None:
            candidates.append((f"listeners[{i}].upstream.tls.key_file", upstream_tls.key_file))
    out = []
    for where, path in candidates:
        if path is None:
            continue
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except OSError:
            continue  # reading it reports the problem
        if mode & 0o077:
            out.append(f"{where} {path} (mode {mode:04o})")
    return out
