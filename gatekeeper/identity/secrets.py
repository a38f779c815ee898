"""Reading Gatekeeper's own secrets from files or environment variables (never from logs)."""

from __future__ import annotations

import os

from gatekeeper.config.values import UpstreamSaslConfig

__all__ = ["SecretError", "read_password"]


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
