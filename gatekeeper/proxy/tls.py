"""TLS on client listeners (optionally mutual): server endpoints and the certificate principal."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import ssl
from twisted.internet.endpoints import SSL4ServerEndpoint, TCP4ServerEndpoint

from gatekeeper.api import Principal
from gatekeeper.config import ListenerConfig, TlsConfig, UpstreamTlsConfig

__all__ = ["certificate_principal", "client_options", "listener_endpoint", "server_options"]


def server_options(tls: TlsConfig) -> Any:
    """TLS context for a listener; with a client CA, client certificates are required."""
    pem = tls.cert_file.read_bytes() + b"\n" + tls.key_file.read_bytes()
    cert = ssl.PrivateCertificate.loadPEM(pem)
    if tls.client_ca_file is None:
        return cert.options()
    ca = ssl.Certificate.loadPEM(tls.client_ca_file.read_bytes())
    return cert.options(ca)


def listener_endpoint(reactor: Any, listener: ListenerConfig) -> Callable[[int], Any]:
    """port → server endpoint for this listener (TLS if configured)."""
    host = listener.bind.host
    if listener.tls is None:
        return lambda port: TCP4ServerEndpoint(reactor, port, interface=host)
    options = server_options(listener.tls)
    return lambda port: SSL4ServerEndpoint(reactor, port, options, interface=host)


def client_options(tls: UpstreamTlsConfig, host: str) -> Any:
    """TLS to a broker: verify it against ``ca_file`` (and present a client certificate)."""
    trust = ssl.Certificate.loadPEM(tls.ca_file.read_bytes())
    client = None
    if tls.cert_file is not None and tls.key_file is not None:
        client = ssl.PrivateCertificate.loadPEM(tls.cert_file.read_bytes() + b"\n" + tls.key_file.read_bytes())
    return ssl.optionsForClientTLS(tls.server_hostname or host, trustRoot=trust, clientCertificate=client)


def certificate_principal(transport: Any) -> Principal | None:
    """The client certificate's subject as a principal (mTLS without SASL), or None."""
    get = getattr(transport, "getPeerCertificate", None)
    cert = get() if get is not None else None
    if cert is None:
        return None
    from cryptography.x509.oid import NameOID

    c = cert.to_cryptography()

    def first(name: Any, oid: Any) -> str | None:
        values = name.get_attributes_for_oid(oid)
        return str(values[0].value) if values else None

    cn = first(c.subject, NameOID.COMMON_NAME)
    if not cn:
        return None
    ous = tuple(str(a.value) for a in c.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME))
    return Principal(sub=cn, issuer=first(c.issuer, NameOID.COMMON_NAME), groups=ous,
                     claims={"subject": c.subject.rfc4514_string()}, mechanism="MTLS")
