"""Gatekeeper's Apache Pulsar protocol adapter, a plugin distribution of its own: the entry point
``gatekeeper.adapters: pulsar`` is ``gatekeeper_pulsar.adapter:PulsarAdapter``."""
