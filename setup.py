"""The hot-path modules, also built as C extensions by Cython (the metadata is in setup.cfg).

Each module in ``COMPILED`` is compiled from its own source, unchanged, with annotations not
read as C types, so it keeps Python's semantics; the source stays beside it, and
``gatekeeper/compiled.py`` loads the source instead of an extension built from other bytes
(an edited checkout) or when ``GATEKEEPER_PURE_PYTHON=1`` asks. The build writes
``gatekeeper/_compiled.json``: each compiled module and the SHA-256 of the source it was
compiled from. ``GATEKEEPER_BUILD_PURE=1`` builds without extensions (no C compiler needed).

A checkout is compiled in place by ``scripts/setup.sh`` (``python setup.py build_ext --inplace``):
only modules whose source changed since the last build are compiled again.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
MANIFEST = "gatekeeper/_compiled.json"

# The connection core and what it calls per request: framing, the request and response walks,
# the operations of every API, enforcement, the decision cache key and the policy input, the
# audit record, metrics, and the Twisted shell's reads and writes.
COMPILED = [
    "gatekeeper/audit/records.py",
    "gatekeeper/audit/trail.py",
    "gatekeeper/kafka/adapter.py",
    "gatekeeper/kafka/apis/acls.py",
    "gatekeeper/kafka/apis/addresses.py",
    "gatekeeper/kafka/apis/admin.py",
    "gatekeeper/kafka/apis/base.py",
    "gatekeeper/kafka/apis/cluster.py",
    "gatekeeper/kafka/apis/configs.py",
    "gatekeeper/kafka/apis/consumer_groups.py",
    "gatekeeper/kafka/apis/coordinator.py",
    "gatekeeper/kafka/apis/fetch.py",
    "gatekeeper/kafka/apis/groups.py",
    "gatekeeper/kafka/apis/metadata.py",
    "gatekeeper/kafka/apis/negotiation.py",
    "gatekeeper/kafka/apis/offsets.py",
    "gatekeeper/kafka/apis/produce.py",
    "gatekeeper/kafka/apis/share_groups.py",
    "gatekeeper/kafka/apis/topic_info.py",
    "gatekeeper/kafka/apis/topics.py",
    "gatekeeper/kafka/apis/transactions.py",
    "gatekeeper/kafka/auditing.py",
    "gatekeeper/kafka/batches.py",
    "gatekeeper/kafka/cluster.py",
    "gatekeeper/kafka/codec.py",
    "gatekeeper/kafka/connection.py",
    "gatekeeper/kafka/denials.py",
    "gatekeeper/kafka/enforce.py",
    "gatekeeper/kafka/framing.py",
    "gatekeeper/kafka/messages.py",
    "gatekeeper/kafka/operations.py",
    "gatekeeper/kafka/records.py",
    "gatekeeper/kafka/request.py",
    "gatekeeper/kafka/responses.py",
    "gatekeeper/kafka/walks.py",
    "gatekeeper/metrics.py",
    "gatekeeper/policy/cache.py",
    "gatekeeper/policy/decision.py",
    "gatekeeper/policy/input.py",
    "gatekeeper/proxy/client.py",
    "gatekeeper/proxy/context.py",
    "gatekeeper/proxy/dispatch.py",
    "gatekeeper/proxy/splicing.py",
    "gatekeeper/proxy/upstream.py",
    "gatekeeper/proxy/writes.py",
    "gatekeeper/values.py",
]


def module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def source_digest(path: str) -> str:
    return hashlib.sha256((ROOT / path).read_bytes()).hexdigest()


def _built_in_place() -> dict[str, str]:
    try:
        found = json.loads((ROOT / MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


class BuildExt(build_ext):
    """``build_ext`` that writes the manifest of what it compiled, beside the extensions."""

    def run(self) -> None:
        super().run()
        target = ROOT if self.inplace else Path(self.build_lib)
        (target / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
        manifest = {module_name(p): source_digest(p) for p in COMPILED}
        (target / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def extensions() -> list:
    if os.environ.get("GATEKEEPER_BUILD_PURE") == "1":
        return []
    from Cython.Build import cythonize

    directives = {"language_level": 3, "annotation_typing": False, "binding": True}
    # Cython regenerates C from a source newer than it by its clock; a source whose bytes differ
    # from the ones the last in-place build compiled is regenerated whatever the clocks say.
    before = _built_in_place()
    changed = [p for p in COMPILED if before.get(module_name(p)) != source_digest(p)]
    unchanged = [p for p in COMPILED if p not in changed]
    built = []
    if changed:
        built += cythonize(changed, compiler_directives=directives, force=True, quiet=True, nthreads=2)
    if unchanged:
        built += cythonize(unchanged, compiler_directives=directives, quiet=True, nthreads=2)
    return built


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
