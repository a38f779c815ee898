"""CPU of the audit trail's writer per record, by fsync policy and by how many records share a write.

    ~/.cache/gatekeeper/venv/bin/python bench/audit_writer.py [--records N]

Runs the real writer (chaining, hashing) and the real file sink in this thread, on Produce
request records shaped as the Kafka data path writes them, in groups of 1, 5, 20 and 100
records per write (the writer's linger groups records that arrive close together: at about
1,000 requests a second, 50 ms of linger makes groups of about 50), with fsync never, interval
and always. Prints the process CPU (user + system) per record. The records come rendered
(serialised but for their place in the chain), as the trail hands them over from the reactor
thread; that rendering's CPU is printed apart. The rest of the reactor thread's share (the
record's fields) is measured by ``bench/connection_micro.py --audit``; the whole cost, as a
throughput ratio, by ``bench/throughput.py --audit``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gatekeeper.api import AuditSinkContext  # noqa: E402
from gatekeeper.audit.file_sink import FileSink  # noqa: E402
from gatekeeper.audit.records import format_time, render  # noqa: E402
from gatekeeper.audit.writer import Item, WorkQueue, Writer  # noqa: E402
from gatekeeper.testing.audit import sample_fields  # noqa: E402

GROUPS = (1, 5, 20, 100)
FSYNC = ("never", "interval", "always")


class _Quiet:
    def __getattr__(self, name: str) -> Any:
        return lambda *args: None


def produce_record() -> dict[str, Any]:
    """A request record of a Produce with three partitions, as the data path fills it."""
    fields = sample_fields("request")
    fields["api"] = {"key": 0, "name": "Produce", "version": 13}
    fields["outcome"] = {"from": "broker", "partitions": [
        {"topic": "orders", "partition": p, "error_code": 0, "base_offset": 1_000_000 + p, "record_count": 15}
        for p in range(3)]}
    return fields


def cpu_per_record(fsync: str, group: int, records: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="gk-audit-bench-") as directory:
        sink = FileSink({"directory": directory, "fsync": fsync}, AuditSinkContext("file", "bench"))
        writer = Writer(sink, WorkQueue(), _Quiet(), key=b"k" * 32, instance="bench", clock=time.time)
        fields = produce_record()
        writer._open()
        now = time.time()
        # The trail's share, on the reactor thread: each record rendered (serialised but for its
        # place in the chain), as AuditTrail.record does once the chain is known.
        started = time.process_time()
        items = [Item("request", render("request", fields, instance="bench", chain=writer.chain,
                                        time=format_time(now + i * 1e-4)) or fields, now + i * 1e-4)
                 for i in range(records)]
        rendering = time.process_time() - started
        started = time.process_time()
        for i in range(0, records, group):
            for item in items[i:i + group]:
                writer._take(item)
            writer._write()
        spent = time.process_time() - started
        sink.close()
    return rendering / records * 1e6, spent / records * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=20_000)
    args = ap.parse_args()
    print(f"audit writer thread CPU per record (us), {args.records:,} Produce request records")
    print("records per write " + "".join(f"{g:>10}" for g in GROUPS))
    rendering = []
    for fsync in FSYNC:
        row = [cpu_per_record(fsync, g, args.records) for g in GROUPS]
        rendering += [r for r, _ in row]
        print(f"fsync {fsync:<12}" + "".join(f"{w:>10.1f}" for _, w in row))
    print(f"rendering on the reactor thread (before the writer): {statistics.median(rendering):.1f} us per record")
    return 0


if __name__ == "__main__":
    sys.exit(main())
