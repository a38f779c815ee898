"""Running the harnesses: under atheris (coverage-guided), or replaying files without it.

``python -m fuzz run NAME [libFuzzer flags] [corpus dirs]``: one harness under atheris (its
process exits when libFuzzer is done; a finding is written as ``crash-…``/``timeout-…``).
``python -m fuzz --long``: every harness in turn for ``--runs`` inputs each (default
1,000,000), niced, from its seed corpus, findings under ``fuzz/findings/``, and a table of
inputs, coverage and findings at the end. ``python -m fuzz replay``: every corpus file
through its harness, without atheris (what the unit tests do).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

from fuzz import HARNESSES

__all__ = ["checked", "corpus_dir", "fuzz_once", "load", "main", "replay"]

ROOT = Path(__file__).resolve().parent
CORPUS = ROOT / "corpus"
FINDINGS = ROOT / "findings"
_STATS = re.compile(r"#(\d+)\s+\w+\s+cov: (\d+) ft: (\d+)")
# Pure-Python libraries a harness's target leans on, instrumented too so coverage guides into them.
_EXTRA_INSTRUMENTED = {"sasl_jwt": ("jwt",)}
# The longest input libFuzzer makes per harness: a connection's input is several frames, and
# one of a few KB already holds a whole exchange (the real seeds are cut to this too).
_MAX_LEN = {"connection_core": 3072, "record_batches": 8192}
_DONE = re.compile(r"Done (\d+) runs in (\d+) second")


def corpus_dir(name: str) -> Path:
    return CORPUS / name


def load(name: str) -> ModuleType:
    if name not in HARNESSES:
        raise SystemExit(f"no harness {name!r}; harnesses: {', '.join(HARNESSES)}")
    return importlib.import_module(f"fuzz.{name}")


def checked(module: ModuleType) -> Callable[[bytes], None]:
    """The harness's target with its documented errors swallowed: anything else escapes, and
    is a finding."""
    target, expected = module.one_input, module.EXPECTED

    def run(data: bytes) -> None:
        try:
            target(data)
        except expected:
            pass

    return run


def corpus_files(name: str) -> Iterator[Path]:
    d = corpus_dir(name)
    if d.is_dir():
        yield from sorted(p for p in d.iterdir() if p.is_file())


def replay(name: str, files: list[Path] | None = None) -> int:
    """Every corpus file (or ``files``) through the harness, no atheris; the count run."""
    run = checked(load(name))
    n = 0
    for path in files if files is not None else list(corpus_files(name)):
        try:
            run(path.read_bytes())
        except BaseException as e:
            e.add_note(f"input: {path}")
            raise
        n += 1
    return n


def _fuzz_main(name: str, argv: list[str]) -> None:
    import atheris

    include = ["gatekeeper", "kafka", "fuzz", *_EXTRA_INSTRUMENTED.get(name, ())]
    # Not instrumented: compression.decompress, whose instrumented bytecode crashes the
    # interpreter (SIGSEGV) on the zlib.error path under atheris 2.3.0 and CPython 3.11, where
    # the plain function raises its CodecError (fuzz/corpus/record_batches/finding-gzip-*).
    with atheris.instrument_imports(include=include, exclude=["gatekeeper.kafka.compression"]):
        module = load(name)
    atheris.Setup([sys.argv[0], *argv], checked(module))
    atheris.Fuzz()


def fuzz_once(name: str, *, runs: int, seconds: int, seed: int = 1, timeout: int = 20,
              artifacts: Path | None = None, nice: bool = False, max_len: int | None = None,
              log: Path | None = None) -> dict[str, Any]:
    """One bounded atheris run of harness ``name`` from its seed corpus (new inputs go to a
    scratch directory, the corpus is not changed). Returns inputs run, cov, ft, findings and
    the tail of the output."""
    scratch = Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-"))
    artifacts = artifacts or FINDINGS  # kept: a finding must be reproducible
    artifacts.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "fuzz", "run", name,
           f"-runs={runs}", f"-max_total_time={seconds}", f"-seed={seed}", f"-timeout={timeout}",
           "-rss_limit_mb=3072", f"-artifact_prefix={artifacts}/{name}-", "-print_final_stats=1"]
    max_len = max_len or _MAX_LEN.get(name)
    if max_len:
        cmd.append(f"-max_len={max_len}")
    cmd += [str(scratch / "new"), str(corpus_dir(name))]
    (scratch / "new").mkdir()
    if nice:
        cmd = ["nice", "-n", "19", *cmd]
    env = dict(os.environ, PYTHONPATH=str(ROOT.parent) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    before = set(artifacts.glob(f"{name}-*"))
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT.parent)
    out = proc.stderr + proc.stdout
    if log is not None:
        log.write_text(out)
    stats = _STATS.findall(out)
    done = _DONE.findall(out)
    findings = sorted(p.name for p in set(artifacts.glob(f"{name}-*")) - before)
    shutil.rmtree(scratch, ignore_errors=True)
    return {
        "harness": name, "returncode": proc.returncode,
        "inputs": int(done[-1][0]) if done else (int(stats[-1][0]) if stats else 0),
        "cov": int(stats[-1][1]) if stats else 0, "ft": int(stats[-1][2]) if stats else 0,
        "seconds": round(time.monotonic() - started), "findings": findings, "tail": out[-4000:],
    }


def _long(names: list[str], runs: int, seconds: int) -> int:
    rows = []
    for name in names:
        row = fuzz_once(name, runs=runs, seconds=seconds, seed=int(time.time()), nice=True,
                        artifacts=FINDINGS, timeout=30, log=FINDINGS / f"{name}.log")
        rows.append(row)
        print(f"{name}: {row['inputs']} inputs, cov {row['cov']}, ft {row['ft']}, {row['seconds']} s, "
              f"findings: {', '.join(row['findings']) or 'none'}", flush=True)
        if row["returncode"] not in (0,):
            print(row["tail"], flush=True)
    print("\n| harness | inputs | cov | ft | seconds | findings |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['harness']} | {r['inputs']} | {r['cov']} | {r['ft']} | {r['seconds']} | {len(r['findings'])} |")
    return 0 if all(r["returncode"] == 0 for r in rows) else 1


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"] and len(argv) >= 2:
        _fuzz_main(argv[1], argv[2:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=("replay",), help="replay the corpora without atheris")
    parser.add_argument("--long", action="store_true", help="the long campaign: --runs inputs per harness")
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=int, default=4 * 3600, help="upper bound per harness")
    parser.add_argument("--harness", action="append", choices=HARNESSES, help="only these (repeatable)")
    args = parser.parse_args(argv)
    names = args.harness or list(HARNESSES)
    if args.long:
        return _long(names, args.runs, args.seconds)
    if args.command == "replay":
        for name in names:
            print(f"{name}: {replay(name)} inputs replayed")
        return 0
    parser.print_help()
    return 2
