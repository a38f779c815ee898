"""The real test harness: a Kafka broker, an OPA server, Kafka's Java tools, a test IdP, a CA,
a twistd launcher and the quickstart.

Tests, benchmarks and ``scripts/quickstart.sh`` import it from the repository root; it is not
part of the ``gatekeeper`` distribution (plugin authors get ``gatekeeper.testing.fakes``).
Import the submodules directly (``harness.broker`` …); this package imports nothing so that
importing it stays cheap.
"""
