"""Regenerate ``wire_pb2.py`` and its type stub ``wire_pb2.pyi`` from ``wire.proto`` (needs
grpcio-tools 1.85.1, a development tool only; pinned in the test extras).

    python -m gatekeeper_pulsar.regenerate          # rewrite wire_pb2.py and wire_pb2.pyi
    python -m gatekeeper_pulsar.regenerate --check  # exit 1 if the committed files differ
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


NAMES = ("wire_pb2.py", "wire_pb2.pyi")


def generate() -> dict[str, str]:
    """What protoc generates for ``wire.proto``: file name -> text."""
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as out:
        root = HERE.parent
        code = protoc.main(["protoc", f"-I{root}", f"--python_out={out}", f"--pyi_out={out}", str(HERE / "wire.proto")])
        if code != 0:
            raise RuntimeError(f"protoc failed with {code} on {HERE / 'wire.proto'}")
        return {name: (Path(out) / "gatekeeper_pulsar" / name).read_text() for name in NAMES}


def main(argv: list[str]) -> int:
    status = 0
    for name, text in generate().items():
        target = HERE / name
        if "--check" in argv:
            same = target.is_file() and target.read_text() == text
            print(f"{target}: {'up to date' if same else 'differs from what wire.proto generates'}")
            status |= 0 if same else 1
        else:
            target.write_text(text)
            print(f"wrote {target}")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
