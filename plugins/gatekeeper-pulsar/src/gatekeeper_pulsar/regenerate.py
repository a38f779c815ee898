"""Regenerate ``wire_pb2.py`` from ``wire.proto`` (needs grpcio-tools, a development tool only).

    python -m gatekeeper_pulsar.regenerate          # rewrite wire_pb2.py
    python -m gatekeeper_pulsar.regenerate --check  # exit 1 if the committed module differs
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def generate() -> str:
    """The text protoc generates for ``wire.proto`` (the module ``gatekeeper_pulsar.wire_pb2``)."""
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as out:
        root = HERE.parent
        code = protoc.main(["protoc", f"-I{root}", f"--python_out={out}", str(HERE / "wire.proto")])
        if code != 0:
            raise RuntimeError(f"protoc failed with {code} on {HERE / 'wire.proto'}")
        return (Path(out) / "gatekeeper_pulsar" / "wire_pb2.py").read_text()


def main(argv: list[str]) -> int:
    text = generate()
    target = HERE / "wire_pb2.py"
    if "--check" in argv:
        same = target.read_text() == text
        print(f"{target}: {'up to date' if same else 'differs from what wire.proto generates'}")
        return 0 if same else 1
    target.write_text(text)
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
