"""The single loader for user-written files: parse YAML/JSON and validate against `schemas/`.

Errors name the file, the JSON path and the rule broken, e.g.
`pipe.yaml: $.run_policy.repeats: 'three' is not of type 'integer' (rule: type)`.
"""

from __future__ import annotations

import difflib
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import InvalidInput

SCHEMA_NAMES = ("pipeline", "promptpack", "model_metadata", "workspace_capabilities", "metric_mapping")


def schemas_dir() -> Path:
    """Installed wheels carry the schemas as `edgegate_cli/_schemas`; a checkout has `schemas/`."""
    from .. import data_dir

    return data_dir("schemas")


@cache
def load_schema(name: str) -> dict:
    """The JSON Schema document `schemas/<name>.schema.json`."""
    return json.loads((schemas_dir() / f"{name}.schema.json").read_text(encoding="utf-8"))


def schema_files() -> dict[str, Path]:
    """Every schema this installation carries, by name, and its file."""
    return {name: schemas_dir() / f"{name}.schema.json" for name in SCHEMA_NAMES}


def load_schema_named(name: str) -> dict:
    """A schema by a name the user typed; InvalidInput (with close matches) for an unknown one."""
    if name not in SCHEMA_NAMES:
        close = difflib.get_close_matches(name, SCHEMA_NAMES, n=1)
        raise InvalidInput(f"no schema {name!r}" + (f"; did you mean {close[0]}?" if close else ""),
                           hint=f"schemas: {', '.join(SCHEMA_NAMES)}")
    return load_schema(name)


def schema_hint(name: str) -> str:
    """Where a user reads schema `name`: a command that works in a checkout and in an installed wheel."""
    return f"the schema: `edgegate schema show {name}`"


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")


def json_path(parts) -> str:
    """`$.a[0].b`; a key that is not plain (a dot, a space, a control character) is quoted: `$['a\\n']`."""
    out = "$"
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        elif isinstance(p, str) and _PLAIN_KEY.fullmatch(p):
            out += f".{p}"
        else:
            out += f"[{str(p)[:64]!r}]"
    return out


def _describe(err) -> str:
    msg = err.message
    if err.validator == "enum" and isinstance(err.instance, str):
        close = difflib.get_close_matches(err.instance, [str(v) for v in err.validator_value], n=3)
        msg = f"{err.instance!r} is not one of the allowed values"
        msg += f"; did you mean {', '.join(close)}?" if close else f" ({', '.join(map(str, err.validator_value))})"
    if err.validator == "pattern" and isinstance(err.instance, str):
        # `(?!\n)$` ends patterns so that Python's `$` does not accept a trailing line feed; show the intent
        msg = f"{err.instance!r} does not match {err.validator_value.replace('(?!' + chr(92) + 'n)$', '$')!r}"
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        msg = _describe_unknown_keys(err)
    if err.validator == "oneOf" and all(isinstance(b, dict) and b.get("title") for b in err.validator_value):
        msg = _describe_one_of(err)
    if len(msg) > 300:
        msg = msg[:297] + "..."
    return msg


def _describe_unknown_keys(err) -> str:
    """`unknown key 'gatess'; did you mean 'gates'?`, like enum values get."""
    known = list((err.schema.get("properties") or {}).keys())
    extra = [k for k in err.instance if k not in known]
    if not extra:
        return err.message
    key = extra[0]
    close = difflib.get_close_matches(str(key), known, n=1)
    more = f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""
    if close:
        return f"unknown key {key!r}{more}; did you mean {close[0]!r}?"
    return f"unknown key {key!r}{more} (allowed: {', '.join(known)})"


def _describe_one_of(err) -> str:
    """`is neither A nor B`, plus what the closest alternative (fewest complaints) is missing."""
    titles = [b["title"] for b in err.validator_value]
    by_branch: dict[int, list] = {}
    for sub in err.context:
        by_branch.setdefault(sub.schema_path[0], []).append(sub)
    msg = "is neither " + " nor ".join(titles)
    if by_branch:
        branch, subs = min(by_branch.items(), key=lambda kv: (len(kv[1]), kv[0]))
        described = err.validator_value[branch].get("description")
        why = described if subs[0].validator == "not" and described else subs[0].message
        msg += f"; as {titles[branch]}: {why}"
    return msg


def validate(doc: Any, schema_name: str, source: str) -> None:
    """Raise InvalidInput naming `source`, the JSON path and the rule if `doc` breaks the schema."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(load_schema(schema_name),
                                     format_checker=Draft202012Validator.FORMAT_CHECKER)
    try:
        errors = sorted(validator.iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    except (RecursionError, OverflowError, ValueError) as exc:  # e.g. a `format: regex` value re cannot compile
        raise InvalidInput(f"{source}: cannot be checked against the {schema_name} schema "
                           f"({type(exc).__name__}: {str(exc)[:120]})", path=source,
                           hint=schema_hint(schema_name)) from None
    if errors:
        # Prefer the deepest error: it points at the field the user must change.
        err = max(errors, key=lambda e: len(e.absolute_path))
        path = json_path(err.absolute_path)
        raise InvalidInput(f"{source}: {path}: {_describe(err)} (rule: {err.validator})",
                           path=source, field=path,
                           hint=schema_hint(schema_name))


MAX_DEPTH = 64  # JSON/YAML nesting; EdgeGate's own files need fewer than 10 levels
MAX_INT = 2**63  # integers beyond 64 bits are refused (they only crash or overflow later)


class _AliasRefused(Exception):
    def __init__(self, mark, anchor: str):
        super().__init__(anchor)
        self.mark, self.anchor = mark, anchor


def _prescan(text: str) -> None:
    """With libyaml, walk the event stream first (C speed, lazily, stopping at the first problem) for an alias
    or nesting deeper than MAX_DEPTH: the pure-Python scanner looks ahead up to 1,024 characters for a simple
    key and is quadratic in the nesting it meets there (about a second for `[` x 1,000). Malformed YAML is left
    to the loader, whose messages name the line."""
    import yaml

    fast = getattr(yaml, "CSafeLoader", None)
    if fast is None:
        return
    depth = 0
    try:
        for event in yaml.parse(text, Loader=fast):
            if isinstance(event, yaml.AliasEvent):
                raise _AliasRefused(event.start_mark, event.anchor)
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > MAX_DEPTH:
                    raise RecursionError
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
    except yaml.YAMLError:
        return


def _yaml_load(text: str):
    """yaml.safe_load that refuses aliases: `*ref` copies are how a 500-byte file expands to gigabytes
    ("billion laughs"), and no EdgeGate file needs them."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise _AliasRefused(event.start_mark, event.anchor)
            self.depth += 1
            if self.depth > MAX_DEPTH:  # at once: PyYAML's scanner slows quadratically with nesting
                raise RecursionError
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    _prescan(text)
    loader = NoAliasLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _parse_yaml(text: str, path: Path):
    import yaml

    try:
        return _yaml_load(text)
    except _AliasRefused as exc:
        raise InvalidInput(f"{path}: line {exc.mark.line + 1}, column {exc.mark.column + 1}: YAML alias "
                           f"*{exc.anchor} is not accepted; write the value out instead", path=str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise InvalidInput(f"{path}:{where}: malformed YAML: {problem}", path=str(path)) from None


def _parse_json(text: str, path: Path):
    try:
        return json.loads(text)  # NaN and Infinity parse, then check_plain_json refuses them naming the path
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: line {exc.lineno}, column {exc.colno}: malformed JSON: {exc.msg}",
                           path=str(path)) from None


def parse_file(path: Path | str) -> Any:
    """Parse a YAML or JSON file by its extension; errors name the file and the line (or JSON path).

    Only a regular file is read (a FIFO or device is refused, never waited on), at most 16 MiB. YAML aliases,
    nesting deeper than 64 levels, integers beyond 64 bits, NaN and infinities, and YAML values JSON has no
    type for (dates, binary, sets, non-string keys) are refused with InvalidInput.
    """
    from ..files import read_regular

    path = Path(path)
    data = read_regular(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not UTF-8 text", path=str(path)) from None
    try:
        doc = _parse_yaml(text, path) if path.suffix.lower() in (".yaml", ".yml") else _parse_json(text, path)
    except RecursionError:
        raise InvalidInput(f"{path}: nested more than {MAX_DEPTH} levels deep", path=str(path)) from None
    except ValueError as exc:  # an integer of more than 4,300 digits, NaN
        raise InvalidInput(f"{path}: {str(exc).splitlines()[0][:120]}", path=str(path)) from None
    check_plain_json(doc, str(path))
    return doc


def check_plain_json(doc: Any, source: str) -> None:
    """Refuse what JSON cannot hold or EdgeGate cannot use, naming the JSON path: nesting deeper than
    MAX_DEPTH, integers of 64 bits or more, NaN or infinities, and non-JSON values or keys."""
    import math

    stack = [(doc, (), 0)]
    while stack:
        value, at, depth = stack.pop()
        where = f"{source}: {json_path(at)}"
        if depth > MAX_DEPTH:
            raise InvalidInput(f"{where}: nested more than {MAX_DEPTH} levels deep", path=source)
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidInput(f"{where}: a key of type {type(key).__name__} is not a JSON key; quote it",
                                       path=source)
                stack.append((item, (*at, key), depth + 1))
        elif isinstance(value, list):
            stack.extend((item, (*at, i), depth + 1) for i, item in enumerate(value))
        elif isinstance(value, bool) or value is None or isinstance(value, str):
            continue
        elif isinstance(value, int):
            if not -MAX_INT <= value < MAX_INT:
                raise InvalidInput(f"{where}: an integer of {value.bit_length()} bits is too large (at most 64)",
                                   path=source)
        elif isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidInput(f"{where}: {value} is not a finite number (JSON has no NaN or Infinity)",
                                   path=source)
        else:
            raise InvalidInput(f"{where}: a YAML {type(value).__name__} is not a JSON value; quote it", path=source)


def load_document(path: Path | str, schema_name: str) -> Any:
    """Parse `path` and validate it against `schema_name`; return the document."""
    doc = parse_file(path)
    validate(doc, schema_name, str(path))
    return doc
