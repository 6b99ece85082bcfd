"""Scoring one PromptPack case: a model's output against the case's expected check (SPEC §3, §6 step 4).

`score_case` is a pure function of (expected, output). Every check is pass or fail: score 1.0 or 0.0
(`correctness` is then the share of cases passed). Before any check, CRLF and lone CR in the output
become LF, as in the canonical pack. Rules per check:
- exact: output == value. With `strip` (default true) leading and trailing whitespace is stripped
  from both first, because models commonly emit a leading space or a final newline.
- one_of: output equals one of values, with the same `strip` rule.
- contains: every one of values occurs in the output (case-sensitive substring).
- regex: Python `re.search(pattern, output)`, the output stripped unless `strip` is false. The
  search runs in a child interpreter killed after REGEX_TIMEOUT_S, so a catastrophic pattern such as
  `(a+)+$` cannot hang a run: it becomes a case error `regex timed out after 2s`. (CPython's `re`
  holds the GIL and cannot be interrupted from another thread; `regex` with its timeout is not a
  dependency.) Results, timeouts included, are memoized per (pattern, text), so greedy repeats of a
  case cost one child (about 20 ms).
- json_schema: the stripped output (one surrounding ``` fence removed) parses as JSON and validates
  against schema (the schema's own $schema, else draft 2020-12; no remote $ref is fetched).
- numeric: the first number in the output (e.g. `-3`, `2.5`, `1e3`) is within tolerance (absolute,
  default 0) of value.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import lru_cache

from pydantic import BaseModel

from ..errors import InvalidInput

REGEX_TIMEOUT_S = 2.0
CHECK_TYPES = ("exact", "contains", "regex", "one_of", "json_schema", "numeric")
_NUMBER = re.compile(r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?")  # no nested quantifiers: linear
_REGEX_CHILD = ("import json,re,sys\nd=json.loads(sys.stdin.buffer.read())\nm=re.search(d[0],d[1])\n"
                "sys.stdout.write(json.dumps(None if m is None else m.group(0)))")


class CaseScore(BaseModel):
    score: float  # 0..1; 1.0 when passed
    passed: bool
    detail: str  # what was compared, for `gate explain`
    error: str | None = None  # the check could not be evaluated (regex timeout); never passed


def score_case(expected: dict, output: str, *, regex_timeout_s: float = REGEX_TIMEOUT_S) -> CaseScore:
    """Score `output` against one `expected` check (a schema-valid PromptPack `expected` object).

    Returns a CaseScore; a check that cannot be evaluated (regex timeout) is a failed score with
    `error` set. Raises InvalidInput for an unknown check type or an invalid regex or JSON Schema
    (load_pack refuses those first, so they reach here only from unchecked callers).
    """
    text = output.replace("\r\n", "\n").replace("\r", "\n")
    kind = expected.get("type")
    if kind not in CHECK_TYPES:
        raise InvalidInput(f"unknown check type {kind!r}; use one of {', '.join(CHECK_TYPES)}")
    if kind == "regex":
        return _regex(expected, text, regex_timeout_s)
    return {"exact": _exact, "contains": _contains, "one_of": _one_of, "json_schema": _json_schema,
            "numeric": _numeric}[kind](expected, text)


def _result(passed: bool, detail: str) -> CaseScore:
    return CaseScore(score=1.0 if passed else 0.0, passed=passed, detail=detail)


def _show(text: str, limit: int = 120) -> str:
    """repr of text, cut to `limit` characters so a long output keeps a report readable."""
    return repr(text) if len(text) <= limit else repr(text[:limit]) + f"... ({len(text)} chars)"


def _stripped(expected: dict, text: str) -> str:
    return text.strip() if expected.get("strip", True) else text


def _exact(expected: dict, text: str) -> CaseScore:
    got, want = _stripped(expected, text), _stripped(expected, expected["value"])
    if got == want:
        return _result(True, f"output equals {_show(want)}")
    return _result(False, f"expected exactly {_show(want)}, got {_show(got)}")


def _one_of(expected: dict, text: str) -> CaseScore:
    got = _stripped(expected, text)
    wanted = [_stripped(expected, v) for v in expected["values"]]
    listed = ", ".join(_show(v, 40) for v in wanted)
    if got in wanted:
        return _result(True, f"output {_show(got)} is one of {listed}")
    return _result(False, f"expected one of {listed}, got {_show(got)}")


def _contains(expected: dict, text: str) -> CaseScore:
    values = expected["values"]
    missing = [v for v in values if v not in text]
    if not missing:
        return _result(True, f"output contains all of {', '.join(_show(v, 40) for v in values)}")
    return _result(False, f"output lacks {', '.join(_show(v, 40) for v in missing)} "
                          f"({len(values) - len(missing)} of {len(values)} found); got {_show(text)}")


def _regex(expected: dict, text: str, timeout_s: float) -> CaseScore:
    pattern = expected["pattern"]
    try:
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as exc:  # a{4294967296}; 1,000 nested groups
        raise InvalidInput(f"invalid regex {_show(pattern, 60)}: {str(exc) or type(exc).__name__}") from None
    status, match = regex_search(pattern, _stripped(expected, text), timeout_s)
    if status == "timeout":
        return CaseScore(score=0.0, passed=False, detail=f"pattern {_show(pattern, 60)} did not finish on "
                         f"{_show(text)}", error=f"regex timed out after {timeout_s:g}s")
    if match is None:
        return _result(False, f"pattern {_show(pattern, 60)} not found in {_show(text)}")
    return _result(True, f"pattern {_show(pattern, 60)} matched {_show(match)}")


@lru_cache(maxsize=4096)
def regex_search(pattern: str, text: str, timeout_s: float = REGEX_TIMEOUT_S) -> tuple[str, str | None]:
    """`re.search(pattern, text)` in a child interpreter killed after `timeout_s` seconds.

    Returns ("ok", matched text or None) or ("timeout", None). Memoized, timeouts included.
    Raises InvalidInput if the child fails otherwise (an invalid pattern).
    """
    try:
        proc = subprocess.run([sys.executable, "-I", "-S", "-c", _REGEX_CHILD],
                              input=json.dumps([pattern, text]).encode("utf-8"), capture_output=True,
                              timeout=timeout_s, check=False)
    except subprocess.TimeoutExpired:  # subprocess.run has killed and reaped the child
        return "timeout", None
    if proc.returncode != 0:
        last = (proc.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
        raise InvalidInput(f"regex {pattern!r} could not be evaluated: {last}")
    return "ok", json.loads(proc.stdout)


def _unfence(text: str) -> str:
    """Drop one surrounding Markdown code fence (```json ... ```), as chat models often add."""
    if text.startswith("```") and text.endswith("```") and "\n" in text:
        return text[text.index("\n") + 1:-3].strip()
    return text


def _json_schema(expected: dict, text: str) -> CaseScore:
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError, best_match
    from jsonschema.validators import validator_for

    schema = expected["schema"]
    cls = validator_for(schema, default=Draft202012Validator)
    try:
        cls.check_schema(schema)
    except SchemaError as exc:
        raise InvalidInput(f"invalid JSON Schema in a json_schema check: {exc.message}") from None
    body = _unfence(text.strip())
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as exc:
        return _result(False, f"output is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): "
                              f"{_show(body)}")
    err = best_match(cls(schema).iter_errors(doc))
    if err is None:
        return _result(True, "output is JSON and matches the schema")
    return _result(False, f"output JSON does not match the schema at {err.json_path}: {err.message}")


def _numeric(expected: dict, text: str) -> CaseScore:
    value, tolerance = float(expected["value"]), float(expected.get("tolerance", 0))
    want = f"{_num(value)} ± {_num(tolerance)}"
    found = _NUMBER.search(text)
    if found is None:
        return _result(False, f"no number in the output {_show(text)}; expected {want}")
    got = float(found.group(0))
    if abs(got - value) <= tolerance:
        return _result(True, f"first number {_num(got)} is within {want}")
    return _result(False, f"first number {_num(got)} is not within {want}; got {_show(text)}")


def _num(x: float) -> str:
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)
