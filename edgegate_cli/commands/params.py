"""Option values without pydantic, where a value needs no validating.

typer (0.29) coerces every option and argument value that is not a bool flag through a pydantic
TypeAdapter it builds on first use, so any command with a string option (the root's `--home` included,
even when not given) imports pydantic: about 0.1 s, the largest import a read command paid. Each typer
parameter builds that coercion lazily (`_TyperParameter.get_runtime_param`, cached in
`_runtime_param`); `fast_coercion(command)` puts a `PlainValues` there first, which returns at once the
values whose coercion is the identity or `int()` of plain digits (None, a str for a str, str items for
a list[str], an int in range for an int) and hands anything else (a malformed or out-of-range number,
a Path, an env value for a flag) to typer's own coercion, built on demand: the values and error
messages are typer's exactly. If a typer release renames that attribute, nothing breaks: typer builds
its own coercion as before and only start-up time suffers (`tests/test_architecture.py` notices).
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

_DIGITS = re.compile(r"-?(0|[1-9][0-9]{0,17})")
_PASS = object()


class PlainValues:
    """A typer runtime parameter (`coerce(value, param, ctx)`) for one option or argument."""

    def __init__(self, descriptor) -> None:
        self.descriptor = descriptor
        self._typer = None  # typer's own coercion, built only for a value this class does not take

    def coerce(self, value: Any, param, ctx) -> Any:
        multi = param.multiple or param.nargs == -1
        if value is None:
            return () if multi else None
        plain = self._plain(value, multi)
        if plain is not _PASS:
            return plain
        if self._typer is None:
            from typer._coercion import build_runtime_param

            self._typer = build_runtime_param(self.descriptor)
        return self._typer.coerce(value, param=param, ctx=ctx)

    def _plain(self, value: Any, multi: bool) -> Any:
        annotation = self.descriptor.annotation
        if multi:
            if self.descriptor.is_list and self.descriptor.choices is None and \
                    getattr(annotation, "__args__", None) == (str,) and isinstance(value, list | tuple) and \
                    all(isinstance(v, str) for v in value):
                return list(value)
            return _PASS
        if annotation is str and isinstance(value, str) and self.descriptor.choices is None:
            return value
        if annotation is bool and isinstance(value, bool):
            return value
        if annotation is int and not isinstance(value, bool):
            number = value if isinstance(value, int) else int(value) if isinstance(value, str) and \
                _DIGITS.fullmatch(value) else None
            info = self.descriptor.parameter_info
            if number is not None and not info.clamp and (info.min is None or number >= info.min) and \
                    (info.max is None or number <= info.max):
                return number
        return _PASS


def fast_coercion(command, help_names: list[str] | None = None) -> None:
    """Give every parameter of `command` and its sub-commands a `PlainValues` (see the module doc),
    their `--help` options included (typer makes those on first use, from the context's help names)."""
    if help_names is None:
        help_names = list((command.context_settings or {}).get("help_option_names", ["--help"]))
    params = list(getattr(command, "params", ()))
    if hasattr(command, "get_help_option"):
        help_option = command.get_help_option(SimpleNamespace(help_option_names=help_names))
        params += [help_option] if help_option is not None else []
    for param in params:
        descriptor = getattr(param, "type_descriptor", None)
        if descriptor is not None and getattr(param, "_runtime_param", _PASS) is None \
                and descriptor.parameter_info.parser is None and descriptor.file_annotation is None:
            param._runtime_param = PlainValues(descriptor)
    for sub in getattr(command, "commands", {}).values():
        fast_coercion(sub, help_names)
