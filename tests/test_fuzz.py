"""Issue 10's fuzz corpus: seeded, bounded mutations of pipelines, PromptPacks, Genie profiles and evidence
bundles, each run through the code that reads them, with a per-case timeout.

The corpus must end with no exit 4 (an exception that is not an EdgeGateError), no hang (a case over its
timeout) and no accepted change (a mutated bundle that verifies; a spoofed identity, non-finite number or
hostile value that loads). Every case is derived from a fixed seed, so a failure names a reproducible case.
Each family runs in-process through the same core call its command makes; a sample also goes through the CLI
(CliRunner), so rendering and the exit-code mapping are exercised too.
"""

from __future__ import annotations

import copy
import json
import math
import random
import re
import signal
import time
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

SEED = 20261128
CASE_TIMEOUT_S = 10.0  # a hang, not a slow case: the slowest take about a second on a quiet machine
GOLDEN = REPO / "tests" / "data" / "golden"
NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
PACK_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
CASE_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
VERSION_RE = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?"
                        r"(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?")

HOSTILE_VALUES = [
    None, True, False, 0, -1, 1, 2**31, 2**63, -(2**63) - 1, 2**64, 10**30, 1e308, -1e308, 1e-320, 0.5, -0.0,
    "", " ", "x" * 5000, "\x1b[2J\x1b[32mVALID", "1.0.0\n", "a\nb", "\u202egnp.exe", "é", "\x00", "../../etc/passwd",
    "a{4294967296}", "(" * 300 + ")" * 300, "(a+)+$", "local:cpu", "latency_ms", "<=", [], {}, [1, 2, 3],
    {"shape": [1]}, [[[[[[[[[[[[]]]]]]]]]]]], {"a": {"b": {"c": {"d": {}}}}}, "2024-01-01", "NaN",
]
YAML_SNIPPETS = [
    "&a [1, 2]", "*a", "!!python/object/apply:os.system ['echo pwned']", "!!binary aGVsbG8=", "2024-01-01",
    "!!set {a, b}", ".nan", ".inf", "-.inf", "0x" + "f" * 40, "0o777", "1_000", "~", "{? complex key : v}",
    "[" * 200 + "]" * 200, "!!float 1e400", "'\\x1b[2J'", "\"\\u202e\"", "|\n  multi\n  line", "&x a",
]


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout()


class Tally:
    """Outcomes by family: exit codes seen, the cases that exited 4, hung, or were accepted while changed."""

    def __init__(self):
        self.cases = 0
        self.codes: dict[int, int] = {}
        self.internal: list[str] = []
        self.hangs: list[str] = []
        self.accepted: list[str] = []

    def run(self, label: str, fn):
        """Run one case under a timer; return fn's value, or None when it raised (recorded by exit code)."""
        from edgegate_cli.errors import EdgeGateError

        self.cases += 1
        signal.setitimer(signal.ITIMER_REAL, CASE_TIMEOUT_S)
        try:
            value = fn()
            code = 0
        except CaseTimeout:
            self.hangs.append(label)
            return None
        except EdgeGateError as err:
            code, value = int(err.exit_code), None
            if any(ord(c) < 0x20 for c in err.message):
                self.internal.append(f"{label}: control character in the message {err.message[:80]!r}")
        except RecursionError as exc:  # noqa: B014 - named apart: the most likely crash
            self.internal.append(f"{label}: RecursionError {str(exc)[:80]}")
            return None
        except Exception as exc:  # an exit 4
            self.internal.append(f"{label}: {type(exc).__name__}: {str(exc)[:120]}")
            return None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        self.codes[code] = self.codes.get(code, 0) + 1
        return value


@pytest.fixture(scope="module")
def tally():
    previous = signal.signal(signal.SIGALRM, _alarm)
    t = Tally()
    yield t
    signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------------------- mutations


def _paths(doc, at=()):
    yield at
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, (*at, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, (*at, i))


def _set(doc, path, value):
    if not path:
        return value
    target = doc
    for p in path[:-1]:
        target = target[p]
    target[path[-1]] = value
    return doc


def _delete(doc, path):
    target = doc
    for p in path[:-1]:
        target = target[p]
    del target[path[-1]]
    return doc


def mutate_doc(rng: random.Random, base):
    doc = copy.deepcopy(base)
    for _ in range(rng.randint(1, 3)):
        paths = list(_paths(doc))
        path = rng.choice(paths)
        action = rng.random()
        if action < 0.55 or not path:
            doc = _set(doc, path, copy.deepcopy(rng.choice(HOSTILE_VALUES)))
        elif action < 0.7:
            doc = _delete(doc, path)
        elif action < 0.85:
            parent = doc
            for p in path[:-1]:
                parent = parent[p]
            if isinstance(parent, dict):
                parent[rng.choice(["zz", "gatess", "nam", "\x1b", "version ", path[-1] + "\n"])] = rng.choice(
                    HOSTILE_VALUES)
            elif isinstance(parent, list):
                parent.append(copy.deepcopy(rng.choice(parent)) if parent else None)
        else:  # a string field gains a suffix that looks harmless
            value = doc if not path else None
            try:
                value = doc
                for p in path:
                    value = value[p]
            except (KeyError, IndexError, TypeError):
                continue
            if isinstance(value, str):
                doc = _set(doc, path, value + rng.choice(["\n", " ", "\r\n", "\t", "\u200b", "\x00"]))
    return doc


def serialize(rng: random.Random, doc, suffix: str) -> bytes:
    import yaml

    if suffix == ".json":
        text = json.dumps(doc, allow_nan=True)
    else:
        text = yaml.safe_dump(doc, allow_unicode=rng.random() < 0.5, default_flow_style=rng.random() < 0.3)
    data = text.encode("utf-8", "surrogatepass")
    roll = rng.random()
    if roll < 0.15 and data:  # byte flips
        b = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
        data = bytes(b)
    elif roll < 0.22:
        data = data[: rng.randrange(len(data) + 1)]
    elif roll < 0.35 and suffix != ".json":
        lines = data.split(b"\n")
        i = rng.randrange(len(lines))
        key = rng.choice([b"description", b"zz", b"name", b"version"])
        lines.insert(i, key + b": " + rng.choice(YAML_SNIPPETS).encode())
        data = b"\n".join(lines)
    elif roll < 0.4:
        depth = rng.choice([70, 500, 5000])
        data = (b"[" * depth + b"]" * depth) if rng.random() < 0.5 else data + b"\n" + b"[" * depth
    return data


def _finite(doc) -> bool:
    return all(not isinstance(v, float) or math.isfinite(v) for v in _values(doc))


def _values(doc):
    stack = [doc]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        else:
            yield v


# --------------------------------------------------------------------------------------- families


def _pipeline_base() -> dict:
    import yaml

    doc = yaml.safe_load((REPO / "examples" / "schemas" / "pipeline.example.yaml").read_text())
    doc["model"]["path"] = str(REPO / "examples" / "quickstart" / "model.onnx")
    return doc


def fuzz_pipelines(tally: Tally, tmp: Path, n: int) -> None:
    from edgegate_cli.spec.pipeline import load_pipeline

    rng, base = random.Random(SEED), _pipeline_base()
    for i in range(n):
        suffix = rng.choice([".yaml", ".json"])
        path = tmp / f"p{i}{suffix}"
        path.write_bytes(serialize(rng, mutate_doc(rng, base), suffix))
        loaded = tally.run(f"pipeline #{i}", lambda p=path: load_pipeline(p))
        if loaded is not None:
            doc = loaded.document()
            if not NAME_RE.fullmatch(loaded.name) or not _finite(doc):
                tally.accepted.append(f"pipeline #{i}: loaded {loaded.name!r}")


def _pack_base() -> dict:
    return json.loads((REPO / "examples" / "schemas" / "promptpack.example.json").read_text())


def fuzz_packs(tally: Tally, tmp: Path, n: int) -> None:
    from edgegate_cli.spec.promptpack_format import load_pack

    rng, base = random.Random(SEED + 1), _pack_base()
    for i in range(n):
        suffix = rng.choice([".json", ".json", ".yaml"])
        path = tmp / f"k{i}{suffix}"
        path.write_bytes(serialize(rng, mutate_doc(rng, base), suffix))
        doc = tally.run(f"pack #{i}", lambda p=path: load_pack(p))
        if doc is not None:
            ids = [(PACK_ID_RE, doc["promptpack_id"]), (VERSION_RE, doc["version"]),
                   *((CASE_ID_RE, c["case_id"]) for c in doc["cases"])]
            if not all(rx.fullmatch(v) for rx, v in ids) or not _finite(doc):
                tally.accepted.append(f"pack #{i}: loaded {doc['promptpack_id']!r}@{doc['version']!r}")


def fuzz_genie(tally: Tally, tmp: Path, n: int) -> None:
    from edgegate_cli.measure.genie import parse_genie_profile

    rng = random.Random(SEED + 2)
    base = json.loads((REPO / "tests" / "data" / "genie_profile_llama3_2_1b_xiaomi15.json").read_text())
    for i in range(n):
        path = tmp / f"g{i}.json"
        path.write_bytes(serialize(rng, mutate_doc(rng, base), ".json"))
        found = tally.run(f"genie #{i}", lambda p=path: parse_genie_profile(p))
        if found is not None and not all(math.isfinite(v) and v >= 0 for v in (found.ttft_ms, found.tps,
                                                                                found.prompt_tps)):
            tally.accepted.append(f"genie #{i}: metrics {found.ttft_ms}, {found.tps}, {found.prompt_tps}")


def _zip_rewrites(rng: random.Random, original: bytes, tmp: Path) -> bytes:
    """A zip-level change that keeps entries readable: reorder, deflate, comment, extra field, date, new entry,
    hostile summary fields."""
    src = tmp / "src.zip"
    src.write_bytes(original)
    with zipfile.ZipFile(src) as zf:
        items = [(i, zf.read(i)) for i in zf.infolist()]
    kind = rng.choice(["reorder", "deflate", "comment", "extra", "date", "entry", "summary", "mode", "dup"])
    if kind == "reorder":
        rng.shuffle(items)
    if kind == "summary":
        summary = json.loads(dict((i.filename, d) for i, d in items)["summary.json"])
        summary["predicate"][rng.choice(["run_id", "pipeline", "verdict", "model", "files", "created_at"])] = \
            rng.choice(HOSTILE_VALUES)
        items = [(i, json.dumps(summary).encode() if i.filename == "summary.json" else d) for i, d in items]
    out = tmp / "out.zip"
    with zipfile.ZipFile(out, "w") as zf:
        for info, data in items:
            info = copy.copy(info)
            if kind == "deflate":
                info.compress_type = zipfile.ZIP_DEFLATED
            if kind == "extra" and rng.random() < 0.3:
                info.extra = b"\x99\x99\x04\x00abcd"
            if kind == "date":
                info.date_time = (2024, 1, 1, 0, 0, 0)
            if kind == "mode":
                info.external_attr = (0o120777 if rng.random() < 0.5 else 0o100755) << 16
            zf.writestr(info, data)
        if kind == "entry":
            zf.writestr(rng.choice(["notes.txt", "../evil", "raw/extra.json", "/abs", "a\\b"]), b"x")
        if kind == "dup":
            import warnings

            with warnings.catch_warnings():  # zipfile warns, and writes it: exactly the hostile zip wanted
                warnings.simplefilter("ignore")
                zf.writestr(items[0][0].filename, items[0][1])
        if kind == "comment":
            zf.comment = b"hello"
    return out.read_bytes()


def mutate_bundle(rng: random.Random, original: bytes, tmp: Path) -> bytes:
    data = bytearray(original)
    roll = rng.random()
    if roll < 0.45:
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif roll < 0.55:
        at = rng.randrange(len(data))
        data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
    elif roll < 0.62:
        at = rng.randrange(len(data))
        del data[at:at + rng.randint(1, 64)]
    elif roll < 0.67:
        data = data[: rng.randrange(len(data))]
    elif roll < 0.72:
        data = bytearray(b"#!/bin/sh\necho hi\n" + bytes(data))
    elif roll < 0.75:
        data += b"trailing"
    else:
        return _zip_rewrites(rng, original, tmp)
    return bytes(data)


def fuzz_bundles(tally: Tally, tmp: Path, n: int, invoke) -> None:
    from edgegate_cli.evidence.bundle_write import show_bundle
    from edgegate_cli.evidence.dsse import read_public_key_file
    from edgegate_cli.evidence.verify import verify_file

    rng = random.Random(SEED + 3)
    original = (GOLDEN / "golden-relative.zip").read_bytes()
    key_id, raw = read_public_key_file(GOLDEN / "golden.pem")
    trusted = {key_id: (raw, None)}
    for i in range(n):
        mutated = mutate_bundle(rng, original, tmp)
        path = tmp / f"b{i}.zip"
        path.write_bytes(mutated)
        result = tally.run(f"bundle #{i} verify", lambda p=path: verify_file(p, trusted))
        if result is not None and mutated != original:
            tally.accepted.append(f"bundle #{i}: a changed bundle verified")
        tally.run(f"bundle #{i} show", lambda p=path: show_bundle(p))
        if i % 10 == 0:  # through the CLI: rendering of untrusted claims and the exit-code mapping
            for args in (("bundle", "show", path), ("verify", path, "--key", GOLDEN / "golden.pem", "--json")):
                cli = tally.run(f"bundle #{i} {args[0]} (cli)", lambda a=args: invoke(*a, expect=None))
                if cli is not None and cli.exit_code == 4:
                    tally.internal.append(f"bundle #{i} {args[0]} (cli): exit 4: {cli.stderr[:120]}")
                if cli is not None and "\x1b" in cli.stdout + cli.stderr:
                    tally.accepted.append(f"bundle #{i} {args[0]} (cli): a raw escape reached the terminal")


def test_fuzz_corpus(tmp_path, tally, invoke, capsys):
    """>= 2,000 seeded cases in under 60 s: no exit 4, no hang, no accepted change."""
    started = time.monotonic()
    counts = {"pipelines": 700, "packs": 600, "genie": 350, "bundles": 450}
    fuzz_pipelines(tally, tmp_path, counts["pipelines"])
    fuzz_packs(tally, tmp_path, counts["packs"])
    fuzz_genie(tally, tmp_path, counts["genie"])
    fuzz_bundles(tally, tmp_path, counts["bundles"], invoke)
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(f"\nfuzz corpus: {tally.cases} cases in {elapsed:.1f} s; exit codes {sorted(tally.codes.items())}; "
              f"{len(tally.internal)} exit-4s, {len(tally.hangs)} hangs, {len(tally.accepted)} accepted changes")
    assert tally.cases >= 2000
    assert tally.internal == [], "\n".join(tally.internal)
    assert tally.hangs == []
    assert tally.accepted == [], "\n".join(tally.accepted)
