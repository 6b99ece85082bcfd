"""The one device filter grammar (fleet list --filter, rollout --target):

    filter := or ;  or := and ("or" and)* ;  and := unary ("and" unary)* ;
    unary  := "not" unary | "(" or ")" | KEY "=" V | KEY "!=" V | KEY "~" GLOB | KEY "in" "(" V ("," V)* ")"
    KEY    := id | type | region | release | tag.NAME | tag:NAME | NAME (shorthand for tag.NAME)

Terms side by side are joined by `and` (`region=eu type=qcs6490 tag:line=3`, SPEC §10.2's example).

Values are bare words ([A-Za-z0-9._:@/*?-]) or double-quoted strings; `~` is an fnmatch glob. An empty
filter, `*` or `all` matches every device. A missing value (no region, no such tag) equals nothing.
`str(f)` is the canonical form. InvalidFilter (exit 2) names the position.

Minimal version of the fleet contract (/work/notes/contract14.md) written by the rollout helper; the
fleet helper's branch owns this module.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from ..errors import InvalidInput

TOKEN = re.compile(r'\s*(?:(?P<op>!=|=|~|\(|\)|,)|"(?P<q>[^"]*)"|(?P<w>[A-Za-z0-9._:@/*?+-]+))')


class InvalidFilter(InvalidInput):
    code = "INVALID_FILTER"


@dataclass(frozen=True)
class DeviceFilter:
    node: tuple | None  # None = every device

    def matches(self, device) -> bool:
        return self.node is None or _eval(self.node, device)

    def __str__(self) -> str:
        return "all" if self.node is None else _text(self.node)


def _value(device, key: str):
    fixed = {"id": device.device_id, "type": device.device_type, "region": device.region,
             "release": device.active_release}
    if key in fixed:
        return fixed[key]
    return device.tags.get(key.removeprefix("tag."))


def _eval(node, device) -> bool:
    kind = node[0]
    if kind == "not":
        return not _eval(node[1], device)
    if kind in ("and", "or"):
        results = (_eval(n, device) for n in node[1:])
        return all(results) if kind == "and" else any(results)
    _, key, op, arg = node
    value = _value(device, key)
    if op == "=":
        return value == arg
    if op == "!=":
        return value != arg
    if op == "~":
        return value is not None and fnmatch.fnmatchcase(value, arg)
    return value in arg


def _quote(v: str) -> str:
    return v if re.fullmatch(r"[A-Za-z0-9._:@/*?+-]+", v) and v not in ("and", "or", "not", "in") else f'"{v}"'


def _text(node) -> str:
    if node[0] == "not":
        return f"not {_text(node[1])}"
    if node[0] in ("and", "or"):
        return "(" + f" {node[0]} ".join(_text(n) for n in node[1:]) + ")"
    _, key, op, arg = node
    if op == "in":
        return f"{key} in ({','.join(_quote(a) for a in arg)})"
    return f"{key}{op}{_quote(arg)}"


def parse_filter(text: str) -> DeviceFilter:
    if text is None or text.strip() in ("", "*", "all"):
        return DeviceFilter(None)
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = TOKEN.match(text, pos)
        if not m:
            raise InvalidFilter(f"filter {text!r}: unexpected character at position {pos + 1}", field="--filter")
        kind = "op" if m.group("op") else "q" if m.group("q") is not None else "w"
        tokens.append((kind, m.group(kind), m.start(kind) + 1))
        pos = m.end()
    parser = _Parser(text, tokens)
    node = parser.parse_or()
    if parser.i != len(tokens):
        raise parser.error("unexpected token")
    return DeviceFilter(node)


class _Parser:
    def __init__(self, text, tokens):
        self.text, self.tokens, self.i = text, tokens, 0

    def error(self, why: str) -> InvalidFilter:
        at = self.tokens[self.i][2] if self.i < len(self.tokens) else len(self.text) + 1
        return InvalidFilter(f"filter {self.text!r}: {why} at position {at}", field="--filter",
                             hint="e.g. region=eu and type~snapdragon-* and not tag.stage=lab")

    def peek(self, value=None):
        if self.i < len(self.tokens) and (value is None or (self.tokens[self.i][0] != "q"
                                                               and self.tokens[self.i][1] == value)):
            return self.tokens[self.i]
        return None

    def take(self, value=None):
        token = self.peek(value)
        if token is None:
            raise self.error(f"expected {value!r}" if value else "unexpected end")
        self.i += 1
        return token

    def parse_or(self):
        nodes = [self.parse_and()]
        while self.peek("or"):
            self.take()
            nodes.append(self.parse_and())
        return nodes[0] if len(nodes) == 1 else ("or", *nodes)

    def parse_and(self):
        nodes = [self.parse_unary()]
        while self.peek("and") or self._juxtaposed():
            if self.peek("and"):
                self.take()
            nodes.append(self.parse_unary())
        return nodes[0] if len(nodes) == 1 else ("and", *nodes)

    def _juxtaposed(self) -> bool:
        """`region=eu type=x` (SPEC §10.2's form): terms side by side are joined by `and`."""
        token = self.peek()
        return token is not None and (token[1] == "(" if token[0] == "op" else token[1] not in ("or", "in"))

    def parse_unary(self):
        if self.peek("not"):
            self.take()
            return ("not", self.parse_unary())
        if self.peek("("):
            self.take()
            node = self.parse_or()
            self.take(")")
            return node
        kind, key, _ = self.take()
        if kind != "w" or key in ("and", "or", "not", "in"):
            self.i -= 1
            raise self.error("expected a key")
        key = "tag." + key[4:] if key.startswith("tag:") else key  # `tag:line=3` (SPEC §10.2) = tag.line
        if key.startswith("tag.") and not key[4:]:
            self.i -= 1
            raise self.error("expected a tag name after tag.")
        if self.peek("in"):
            self.take()
            self.take("(")
            values = [self.value()]
            while self.peek(","):
                self.take()
                values.append(self.value())
            self.take(")")
            return ("cmp", key, "in", tuple(values))
        op = self.peek()
        if op is None or op[1] not in ("=", "!=", "~") or op[0] != "op":
            raise self.error("expected =, !=, ~ or in")
        self.take()
        return ("cmp", key, op[1], self.value())

    def value(self) -> str:
        kind, value, _ = self.take()
        if kind == "op":
            self.i -= 1
            raise self.error("expected a value")
        return value
