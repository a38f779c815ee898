"""Kafka error responses built from the request: what a client sees for a denied operation.

``error_response(api_key, version, request_body, denials)`` answers every entity of the
request (topic, partition, group, resource …) in the API's own response shape, with the error
code and, where the version has one, the message that ``denials`` gives for it. Pure.

Each API's shape is built by its enforcement unit and is the one the broker itself sends when
its own authorizer refuses the same request (``tests/integration/test_denial_conformance.py``
compares them field by field against a broker running Kafka's StandardAuthorizer). APIs with
no shape of their own get the generic one: the top-level error code, and message.
"""

from __future__ import annotations

from typing import Any

from gatekeeper.api import CLUSTER
from gatekeeper.kafka.apis import UNITS
from gatekeeper.kafka.apis.base import Denials, Resolve
from gatekeeper.kafka.codec import API_TABLE

__all__ = ["ErrorResponseUnavailable", "error_response"]


class ErrorResponseUnavailable(Exception):
    """No error response shape is known for this API: the caller closes the connection."""


def error_response(api_key: int, version: int, b: Any, deny: Denials, resolve: Resolve = lambda _: None) -> Any:
    """The response body answering request body ``b`` entirely with denials."""
    spec = API_TABLE[api_key]
    unit = UNITS[api_key]
    if unit.negotiation:
        raise ErrorResponseUnavailable(f"{spec.name} is not answered with an error: the connection is closed")
    if unit.error_response is not None:
        return unit.error_response(spec.response, version, b, deny, resolve)
    R = spec.response
    fields = {f["name"] for f in R.json["fields"]}
    if "ErrorCode" not in fields:
        raise ErrorResponseUnavailable(f"no error response is known for {spec.name}")
    d = deny(CLUSTER)
    kw: dict[str, Any] = {"error_code": d.code}
    if "ErrorMessage" in fields:
        kw["error_message"] = d.message
    return R[version](**kw)
