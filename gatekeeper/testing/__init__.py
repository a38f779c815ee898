"""Fakes for unit-testing code that plugs into Gatekeeper, without a network or a running reactor.

``gatekeeper.testing.fakes`` is what a plugin author uses in their own unit tests;
``gatekeeper.testing.masking`` runs a masker or detector through the real rules engine;
``gatekeeper.testing.audit`` has a clock for the audit trail's writer thread, a valid record of
every kind and a synchronous trail writer (for tests of audit sinks and trail readers);
``gatekeeper.testing.connection`` has a recording shell for driving a connection core directly.
The real test harness (Kafka broker, OPA server, Java tools …) lives in the repository's
``harness/`` directory and is not shipped with the package.
"""
