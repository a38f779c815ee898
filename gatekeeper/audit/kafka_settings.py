"""kafka-python client settings for Gatekeeper's own connection to the upstream cluster: the
same SASL mechanism, credentials and TLS settings as its data-path connections use. The Kafka
audit sink produces with them; ``gatekeeper audit … --config`` reads the trail with them."""

from __future__ import annotations

import ssl
from typing import Any

__all__ = ["client_settings"]


class _NamedContext(ssl.SSLContext):
    """An SSLContext that checks the broker's certificate against one configured name
    (``upstream.tls.server_hostname``) whatever address it dials, as the data path does."""

    server_name: str = ""

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["server_hostname"] = self.server_name
        return super().wrap_socket(sock, *args, **kwargs)


def _tls_context(tls: Any) -> ssl.SSLContext:
    """Verify the broker against ``ca_file`` (and its name: the address dialled, or
    ``server_hostname``); present ``cert_file``/``key_file`` when given."""
    context = _NamedContext(ssl.PROTOCOL_TLS_CLIENT) if tls.server_hostname else ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if isinstance(context, _NamedContext):
        context.server_name = tls.server_hostname
    context.load_verify_locations(cafile=str(tls.ca_file))
    if tls.cert_file is not None and tls.key_file is not None:
        context.load_cert_chain(str(tls.cert_file), str(tls.key_file))
    return context


def client_settings(upstream: Any, credentials: Any = None, *, bootstrap: str | None = None) -> dict[str, Any]:
    """kafka-python keyword arguments for ``upstream`` (``gatekeeper.config.UpstreamConfig``):
    bootstrap servers (or ``bootstrap``), ``security_protocol``, SASL (``credentials`` is
    ``(mechanism, username, password)``, as the gateway's ``upstream_credentials`` returns) and
    an SSL context from ``upstream.tls``. Raises ValueError when SASL is configured and no
    password was read."""
    out: dict[str, Any] = {}
    servers = bootstrap
    if servers is None and upstream is not None:
        servers = ",".join(str(s) for s in upstream.bootstrap_servers)
    if servers:
        out["bootstrap_servers"] = servers
    tls = getattr(upstream, "tls", None)
    sasl = getattr(upstream, "sasl", None)
    if sasl is not None:
        if credentials is None:
            raise ValueError("upstream.sasl is configured but Gatekeeper's broker password was not read")
        mechanism, username, password = credentials
        out.update(sasl_mechanism=mechanism, sasl_plain_username=username, sasl_plain_password=password)
    out["security_protocol"] = ("SASL_" if sasl is not None else "") + ("SSL" if tls is not None else "PLAINTEXT")
    if tls is not None:
        out["ssl_context"] = _tls_context(tls)
    return out
