"""Configs: DescribeConfigs, AlterConfigs, IncrementalAlterConfigs, per config resource."""

from __future__ import annotations

from typing import Any

from gatekeeper.api import CLUSTER, Operation, Resource
from gatekeeper.kafka.apis.base import (
    CONFIG_RESOURCE_TYPES,
    ApiKey,
    ApiUnit,
    Denials,
    Entities,
    OpContext,
    Resolve,
    config_resource,
)


def _operation(kind: str, rtype: int, name: str, req: dict[str, Any]) -> Operation:
    typ = CONFIG_RESOURCE_TYPES.get(rtype, f"config_resource_{rtype}")
    if typ == "topic":
        return Operation(f"{kind}_topic_config", Resource("topic", name), req)
    if typ == "group":
        return Operation(f"{kind}_group_config", Resource("group", name), req)
    return Operation(f"{kind}_cluster_config", CLUSTER, {**req, "config_resource": {"type": typ, "name": name}})


def _describe(b: Any, c: OpContext) -> list[Operation]:
    return [_operation("describe", r.resource_type, r.resource_name,
                       {"keys": None if r.configuration_keys is None else list(r.configuration_keys)})
            for r in b.resources]


def _alter(b: Any, c: OpContext) -> list[Operation]:
    return [_operation("alter", r.resource_type, r.resource_name,
                       {"configs": {cfg.name: cfg.value for cfg in r.configs}, "validate_only": bool(b.validate_only)})
            for r in b.resources]


def _describe_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    X = R.DescribeConfigsResult
    out = []
    for r in b.resources:
        d = deny(config_resource(r.resource_type, r.resource_name))
        out.append(X(error_code=d.code, error_message=d.message, resource_type=r.resource_type, resource_name=r.resource_name, configs=[]))
    return R[v](throttle_time_ms=0, results=out)


def _alter_error(R: Any, v: int, b: Any, deny: Denials, resolve: Resolve) -> Any:
    X = R.AlterConfigsResourceResponse
    out = []
    for r in b.resources:
        d = deny(config_resource(r.resource_type, r.resource_name))
        out.append(X(error_code=d.code, error_message=d.message, resource_type=r.resource_type, resource_name=r.resource_name))
    return R[v](throttle_time_ms=0, responses=out)


def _config(e: Any, r: Resolve) -> Resource:
    return config_resource(e.resource_type, e.resource_name)


_DESCRIBE = Entities("resources", "results", _config)
_ALTER = Entities("resources", "responses", _config)

UNITS = [
    ApiUnit(ApiKey.DESCRIBE_CONFIGS, _describe, _describe_error, entities=lambda v: _DESCRIBE),
    ApiUnit(ApiKey.ALTER_CONFIGS, _alter, _alter_error, entities=lambda v: _ALTER),
    ApiUnit(ApiKey.INCREMENTAL_ALTER_CONFIGS, _alter, _alter_error, entities=lambda v: _ALTER),
]
