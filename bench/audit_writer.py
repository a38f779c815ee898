"""CPU of the audit trail's writer per record, by fsync policy and by how many records share a write.

    ~/.cache/gatekeeper/venv/bin/python bench/audit_writer.py [--records N]

Runs the real writer and the real file sink in this thread, on Produce request records shaped
as the Kafka data path writes them, in groups of 1, 5, 20 and 100 records per write (the
writer's group commit gathers the records of ``audit.group_commit``: at about 1,000 requests a
second, 200 ms makes groups of about 200), with fsync never, interval and always. Prints the
process CPU (user + system) per record. The records come as the trail hands them over from the
reactor thread: serialised and sealed in their place in the chain (``gatekeeper.audit.chain``),
whose CPU is printed apart. The rest of the reactor
thread's share (the record's fields) is measured by ``bench/connection_micro.py --audit``; the
whole cost, as a throughput ratio, by ``bench/throughput.py --audit``.
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
from gatekeeper.audit.chain import Chain  # noqa: E402
from gatekeeper.audit.file_sink import FileSink  # noqa: E402
from gatekeeper.audit.writer import WorkQueue, Writer  # noqa: E402
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
    """(sealing in the chain, the writer's share), each in µs of CPU per record."""
    with tempfile.TemporaryDirectory(prefix="gk-audit-bench-") as directory:
        sink = FileSink({"directory": directory, "fsync": fsync}, AuditSinkContext("file", "bench"))
        writer = Writer(sink, WorkQueue(), _Quiet())
        fields = produce_record()
        opened = sink.open()
        chain = Chain(opened, key=b"k" * 32, instance="bench", segments=sink.segments)
        now = time.time()
        # The trail's share, on the reactor thread: each record serialised and sealed in its
        # place in the chain, as AuditTrail.record does once the chain is known.
        lines = [chain.start(now, "file")]
        started = time.process_time()
        lines += [chain.record("request", fields, now + i * 1e-4) for i in range(records)]
        sealing = time.process_time() - started
        writer._take(lines[0])
        started = time.process_time()
        for i in range(1, records + 1, group):
            for line in lines[i:i + group]:
                writer._take(line)
            writer._write()
        spent = time.process_time() - started
        sink.close()
    return sealing / records * 1e6, spent / records * 1e6


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=20_000)
    args = ap.parse_args()
    print(f"audit writer thread CPU per record (us), {args.records:,} Produce request records")
    print("records per write " + "".join(f"{g:>10}" for g in GROUPS))
    sealing = []
    for fsync in FSYNC:
        row = [cpu_per_record(fsync, g, args.records) for g in GROUPS]
        sealing += [r for r, _ in row]
        print(f"fsync {fsync:<12}" + "".join(f"{w:>10.1f}" for _, w in row))
    print(f"on the reactor thread, before the writer, per record: sealing in the chain {statistics.median(sealing):.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
