"""Printing results of any length as they come: one row (or one JSON object) at a time, never a whole
table in memory. For listings that grow with the home (`cas ls` of 100,000 blobs); everything else goes
through `Output.table`/`Output.emit`. Strings pass the invocation's redactor, and control characters
are escaped, as everywhere else.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]")


def _escape(text: str) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else
                        f"\\u{ord(m.group()):04x}", text)


def _cells(row: Sequence[Any]) -> list[str]:
    cells = ["" if v is None else str(v) for v in row]
    if _CONTROL.search("".join(cells)):  # one search a row; escaping only in the rare row that needs it
        cells = [_escape(c) for c in cells]
    return cells


def stream_json_list(out, key: str, items: Iterable[dict]) -> int:
    """Print `{"<key>": [...]}` on stdout, one object per line as each arrives: one JSON document
    (sorted keys, no NaN, secrets masked), like `Output.emit`, in constant memory. Returns the count."""
    write = sys.stdout.write
    secrets = out.ctx.secrets
    write(f'{{"{key}": [')
    count = 0
    for item in items:
        item = secrets.redact_obj(item) if secrets else item  # walking 100,000 dicts for no secret costs seconds
        write(("\n" if count == 0 else ",\n") + json.dumps(item, sort_keys=True, allow_nan=False))
        count += 1
    write("\n]}\n" if count else "]}\n")
    sys.stdout.flush()
    return count


def stream_rows(out, columns: Sequence[str], rows: Iterable[Sequence[Any]], widths: Sequence[int],
                right: Sequence[int] = ()) -> int:
    """Print a table on stdout a row at a time: on a terminal, columns padded to `widths` (the last
    column is never padded; `right` lists right-aligned columns); off a terminal, tab-separated cells,
    a header first. Returns the number of rows."""
    terminal = sys.stdout.isatty()
    write = sys.stdout.write

    def line(cells: Sequence[str]) -> str:
        if not terminal:
            return out.ctx.secrets.redact("\t".join(cells)) + "\n"
        padded = [c.rjust(w) if i in right else c.ljust(w)
                  for i, (c, w) in enumerate(zip(cells[:-1], widths, strict=True))]
        return out.ctx.secrets.redact("  ".join([*padded, cells[-1]]).rstrip()) + "\n"

    write(line(list(columns)))
    count = 0
    for row in rows:
        write(line(_cells(row)))
        count += 1
    sys.stdout.flush()
    return count
