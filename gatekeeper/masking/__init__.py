"""Masking, protocol-neutral: maskers, detectors and JSONPath field rules as pure functions over
record keys, values and headers. The Kafka adapter applies plans to record batches."""

from gatekeeper.masking.plan import MARKERS, MaskedRecord, Plan, RecordRefused
from gatekeeper.masking.planner import Masking
from gatekeeper.masking.registry import MaskingError
from gatekeeper.masking.rules import DEFAULT_ON_ERROR, ON_ERROR, Rule

__all__ = [
    "DEFAULT_ON_ERROR",
    "MARKERS",
    "ON_ERROR",
    "MaskedRecord",
    "Masking",
    "MaskingError",
    "Plan",
    "RecordRefused",
    "Rule",
]
