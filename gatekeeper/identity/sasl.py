"""Sans-I/O SASL server message parsing: OAUTHBEARER (RFC 7628) and PLAIN (RFC 4616)."""

from __future__ import annotations

__all__ = ["SaslError", "parse_oauthbearer", "parse_plain"]


class SaslError(Exception):
    """The client's SASL message is malformed."""


def parse_oauthbearer(message: bytes) -> str:
    """The bearer token of an OAUTHBEARER client first message: ``n,[a=authzid],\\x01auth=Bearer <t>\\x01[k=v\\x01]\\x01``."""
    try:
        text = message.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SaslError("OAUTHBEARER message is not UTF-8") from e
    gs2, sep, rest = text.partition("\x01")
    if not sep or not gs2.startswith(("n,", "y,")):
        raise SaslError("OAUTHBEARER message lacks the GS2 header")
    for kv in rest.split("\x01"):
        key, _, value = kv.partition("=")
        if key == "auth":
            scheme, _, token = value.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise SaslError("OAUTHBEARER auth is not 'Bearer <token>'")
            return token.strip()
    raise SaslError("OAUTHBEARER message has no auth=Bearer value")


def parse_plain(message: bytes) -> tuple[str, str]:
    """(username, password) of a PLAIN message ``[authzid]\\0authcid\\0passwd``."""
    parts = message.split(b"\x00")
    if len(parts) != 3:
        raise SaslError("PLAIN message is not authzid NUL authcid NUL password")
    try:
        return parts[1].decode("utf-8"), parts[2].decode("utf-8")
    except UnicodeDecodeError as e:
        raise SaslError("PLAIN message is not UTF-8") from e
