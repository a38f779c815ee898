"""Test harness: a real Kafka broker, a real OPA server and Kafka's own Java tools.

Import the submodules directly (``gatekeeper.testing.broker`` …); this package imports
nothing so that importing it stays cheap.
"""
