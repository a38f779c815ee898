"""The built-in Kafka adapter: framing, codec, operations, response rewriting."""

from gatekeeper.kafka.adapter import DecodedRequest, KafkaAdapter

__all__ = ["DecodedRequest", "KafkaAdapter"]
