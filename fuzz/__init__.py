"""Coverage-guided fuzzing (atheris) of everything Gatekeeper parses from outside.

One module per target (``frames``, ``request_bodies``, ``sasl_jwt``, ``record_batches``,
``broker_responses``, ``connection_core``), each with ``one_input(data)`` and the exceptions
its code may document (``EXPECTED``); ``fuzz.runner`` runs them under atheris, replays
corpora and runs the long campaign. See fuzz/README.md.
"""

HARNESSES = (
    "frames",
    "request_bodies",
    "sasl_jwt",
    "record_batches",
    "broker_responses",
    "connection_core",
)

__all__ = ["HARNESSES"]
