"""The PromptPack file format (SPEC §3): load and check a pack file, its canonical form and digest.
Stored versions live in `promptpacks.py`.

The canonical form is a contract (pinned by a golden digest in tests/test_promptpacks.py):
see `canonicalize`. What a runner feeds the model is the canonical document (`get_pack`,
`resolve_pipeline_pack`, `load_pack` all return it), so the digest covers exactly what is run.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from ..canonical import canonical_json
from ..errors import InvalidInput, LimitExceeded

MAX_CASES = 50
MAX_NEW_TOKENS = 256
DEFAULT_MAX_NEW_TOKENS = 128


# --- canonical form -------------------------------------------------------------------------------


def canonicalize(doc: Any) -> bytes:
    """The canonical bytes of a PromptPack document, the input of its digest.

    Contract (changing any of it changes every digest; the golden test pins it):
    1. every string, keys included, has LF line endings: CRLF and lone CR become LF;
    2. in prompt strings (`$.cases[*].prompt`) and message contents (`$.cases[*].messages[*].content`)
       trailing whitespace (str.isspace) is removed from every line and from the end of the string;
       leading whitespace and every other string are kept as they are;
    3. a float with an integral value below 2**53 becomes an int (`1.0` -> `1`, as RFC 8785 prints it);
    4. serialized by `canonical.canonical_json` (sorted keys, compact separators, UTF-8, no NaN, no
       trailing newline).
    Nothing else is normalized: no defaults are filled in, no Unicode normalization, case order kept.
    Raises InvalidInput for NaN or an infinity (JSON has neither).
    """
    return canonical_json(_normalize(doc, ()))


def pack_digest(doc: Any) -> str:
    """The sha256 hex digest (untagged) of `canonicalize(doc)`."""
    return hashlib.sha256(canonicalize(doc)).hexdigest()


def _is_prompt_text(path: tuple) -> bool:
    return (len(path) == 3 and path[0] == "cases" and path[2] == "prompt") or (
        len(path) == 5 and path[0] == "cases" and path[2] == "messages" and path[4] == "content")


def _normalize(value: Any, path: tuple) -> Any:
    if isinstance(value, dict):
        return {_lf(k): _normalize(v, (*path, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalize(v, (*path, i)) for i, v in enumerate(value)]
    if isinstance(value, str):
        text = _lf(value)
        return "\n".join(line.rstrip() for line in text.split("\n")).rstrip() if _is_prompt_text(path) else text
    if isinstance(value, float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise InvalidInput(f"{_json_path(path)}: {value} is not a finite number (JSON has no NaN or Infinity)")
        if value.is_integer() and abs(value) < 2**53:
            return int(value)
    return value


def _lf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _json_path(parts) -> str:
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


# --- loading and checking a pack file -------------------------------------------------------------


def load_pack(path: Path | str) -> dict:
    """Parse, schema-validate and check a PromptPack file; return its canonical document.

    Raises InvalidInput (malformed file, schema violation, temperature other than 0, duplicate
    case_id, invalid regex or JSON Schema in a check, NaN) or LimitExceeded (more than 50 cases,
    max_new_tokens above 256). Every message starts with the file and the JSON path.
    """
    from .schemas import parse_file, validate

    source = str(path)
    doc = parse_file(path)
    _check_temperature(doc, source)  # before the schema, whose `const` rule would not say why
    _precheck_regexes(doc, source)
    validate(doc, "promptpack", source)
    check_pack(doc, source)
    try:
        return json.loads(canonicalize(doc))
    except InvalidInput as err:
        raise InvalidInput(f"{source}: {err.message}", path=source) from None


def _check_temperature(doc: Any, source: str) -> None:
    defaults = doc.get("defaults") if isinstance(doc, dict) else None
    t = defaults.get("temperature") if isinstance(defaults, dict) else None
    if isinstance(t, int | float) and not isinstance(t, bool) and t != 0:
        raise InvalidInput(f"{source}: $.defaults.temperature: {t} is not allowed; gates must be "
                           "deterministic, so PromptPacks decode greedily (temperature 0)",
                           path=source, field="$.defaults.temperature", hint="set it to 0 or remove it")


def check_pack(doc: dict, source: str) -> None:
    """The checks a schema cannot express, on a schema-valid document: limits, unique case ids,
    compilable regexes, valid JSON Schemas. Raises LimitExceeded or InvalidInput naming the case."""
    cases = doc["cases"]
    if len(cases) > MAX_CASES:
        raise LimitExceeded(f"{source}: $.cases: {len(cases)} cases exceed the limit of {MAX_CASES} cases "
                            "per PromptPack", path=source, field="$.cases", hint="split it into several packs")
    n = doc.get("defaults", {}).get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    if n > MAX_NEW_TOKENS:
        raise LimitExceeded(f"{source}: $.defaults.max_new_tokens: {n} new tokens exceed the limit of "
                            f"{MAX_NEW_TOKENS}", path=source, field="$.defaults.max_new_tokens")
    seen: dict[str, int] = {}
    for i, case in enumerate(cases):
        cid, where = case["case_id"], f"{source}: $.cases[{i}]"
        if cid in seen:
            raise InvalidInput(f"{where}.case_id: {cid!r} is also the id of $.cases[{seen[cid]}]; case ids "
                               "must be unique within a pack", path=source, field=f"$.cases[{i}].case_id")
        seen[cid] = i
        if case.get("max_new_tokens", 0) > MAX_NEW_TOKENS:
            raise LimitExceeded(f"{where}.max_new_tokens: {case['max_new_tokens']} new tokens for case {cid!r} "
                                f"exceed the limit of {MAX_NEW_TOKENS}", path=source,
                                field=f"$.cases[{i}].max_new_tokens")
        _check_expected(case["expected"], cid, f"{where}.expected", source)


MAX_REGEX_GROUP_DEPTH = 50  # re's parser recurses per group: deep nesting fails (or not) with the stack depth


def _group_depth(pattern: str) -> int:
    """The deepest nesting of parentheses outside character classes (escapes skipped)."""
    depth = deepest = 0
    escaped = in_class = False
    for c in pattern:
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif c == ")":
            depth = max(depth - 1, 0)
    return deepest


def _check_regex(pattern, where: str, source: str, *, syntax: bool = True) -> None:
    """Compile a check's regex; InvalidInput for one re refuses (including a{4294967296}, whose count overflows,
    and a thousand nested groups, which exhaust the parser's recursion)."""
    if not isinstance(pattern, str):
        return  # the schema names the type
    if _group_depth(pattern) > MAX_REGEX_GROUP_DEPTH:
        raise InvalidInput(f"{where} has an invalid regex: groups nested more than {MAX_REGEX_GROUP_DEPTH} deep",
                           path=source)
    try:
        re.compile(pattern)
    except re.error as exc:
        if syntax:  # before the schema (syntax=False), its `format: regex` names it (rule: format)
            raise InvalidInput(f"{where} has an invalid regex: {exc}", path=source) from None
    except OverflowError as exc:
        raise InvalidInput(f"{where} has an invalid regex: {exc}", path=source) from None
    except RecursionError:
        raise InvalidInput(f"{where} has an invalid regex: nested too deeply", path=source) from None


def _precheck_regexes(doc, source: str) -> None:
    """Before the schema (whose `format: regex` check would crash on the same patterns), compile every
    regex check's pattern, naming its JSON path."""
    cases = doc.get("cases") if isinstance(doc, dict) else None
    for i, case in enumerate(cases if isinstance(cases, list) else []):
        expected = case.get("expected") if isinstance(case, dict) else None
        if isinstance(expected, dict) and expected.get("type") == "regex":
            cid = case.get("case_id")
            _check_regex(expected.get("pattern"), f"{source}: $.cases[{i}].expected.pattern: case {cid!r}", source,
                         syntax=False)


def _check_expected(expected: dict, cid: str, where: str, source: str) -> None:
    if expected["type"] == "regex":
        _check_regex(expected["pattern"], f"{where}.pattern: case {cid!r}", source)
    elif expected["type"] == "json_schema":
        from jsonschema.exceptions import SchemaError
        from jsonschema.validators import validator_for

        schema = expected["schema"]
        try:
            validator_for(schema, default=_draft2020()).check_schema(schema)
        except SchemaError as exc:
            raise InvalidInput(f"{where}.schema: case {cid!r} has an invalid JSON Schema: {exc.message} "
                               f"(at {_json_path(exc.absolute_path)})", path=source) from None


def _draft2020():
    from jsonschema import Draft202012Validator

    return Draft202012Validator


def effective_cases(doc: dict) -> list[dict]:
    """The cases of a canonical document as a runner needs them: case_id, prompt or messages,
    expected, and max_new_tokens resolved (case, else defaults, else 128)."""
    default = doc.get("defaults", {}).get("max_new_tokens", DEFAULT_MAX_NEW_TOKENS)
    return [{**case, "max_new_tokens": case.get("max_new_tokens", default)} for case in doc["cases"]]


class PackInfo(BaseModel):
    pack_id: str
    version: str
    sha256: str  # tagged `sha256:<hex>`, of the canonical bytes
    cases: int
    description: str | None = None
    created_at: str | None = None  # when it was added to this home (None for a file)
    source: str | None = None  # the file it was read from (None for a stored pack)


class StoredPack(PackInfo):
    document: dict  # the canonical document


def info_fields(doc: dict, **extra) -> dict:
    return {"pack_id": doc["promptpack_id"], "version": doc["version"], "sha256": "sha256:" + pack_digest(doc),
            "cases": len(doc["cases"]), "description": doc.get("description"), **extra}


def validate_pack_file(path: Path | str) -> PackInfo:
    """Check a pack file as `pack add` would, writing nothing; return what it would store.
    Raises what load_pack raises."""
    return PackInfo(**info_fields(load_pack(path), source=str(path)))
