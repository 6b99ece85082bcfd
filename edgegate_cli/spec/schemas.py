"""The single loader for user-written files: parse YAML/JSON and validate against `schemas/`.

Errors name the file, the JSON path and the rule broken, e.g.
`pipe.yaml: $.run_policy.repeats: 'three' is not of type 'integer' (rule: type)`.
"""

from __future__ import annotations

import difflib
import json
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


def json_path(parts) -> str:
    out = "$"
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _describe(err) -> str:
    msg = err.message
    if err.validator == "enum" and isinstance(err.instance, str):
        close = difflib.get_close_matches(err.instance, [str(v) for v in err.validator_value], n=3)
        msg = f"{err.instance!r} is not one of the allowed values"
        msg += f"; did you mean {', '.join(close)}?" if close else f" ({', '.join(map(str, err.validator_value))})"
    if err.validator == "oneOf" and all(isinstance(b, dict) and b.get("title") for b in err.validator_value):
        msg = _describe_one_of(err)
    if len(msg) > 300:
        msg = msg[:297] + "..."
    return msg


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
    errors = sorted(validator.iter_errors(doc), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    if errors:
        # Prefer the deepest error: it points at the field the user must change.
        err = max(errors, key=lambda e: len(e.absolute_path))
        path = json_path(err.absolute_path)
        raise InvalidInput(f"{source}: {path}: {_describe(err)} (rule: {err.validator})",
                           path=source, field=path,
                           hint=schema_hint(schema_name))


def parse_file(path: Path | str) -> Any:
    """Parse a YAML or JSON file by its extension; errors name the file and the line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInput(f"{path}: no such file", path=str(path)) from None
    except IsADirectoryError:
        raise InvalidInput(f"{path}: is a directory, expected a file", path=str(path)) from None
    except UnicodeDecodeError:
        raise InvalidInput(f"{path}: not UTF-8 text", path=str(path)) from None
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise InvalidInput(f"{path}:{where}: malformed YAML: {problem}", path=str(path)) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{path}: line {exc.lineno}, column {exc.colno}: malformed JSON: {exc.msg}",
                           path=str(path)) from None


def load_document(path: Path | str, schema_name: str) -> Any:
    """Parse `path` and validate it against `schema_name`; return the document."""
    doc = parse_file(path)
    validate(doc, schema_name, str(path))
    return doc
