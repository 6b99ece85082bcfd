"""sqlite-utils, imported without the numpy it does not need.

`sqlite_utils.db` tries `import numpy` (and `import pandas`) when it is first imported, only to add
numpy's scalar types (and `pandas.Timestamp`) to `COLUMN_TYPE_MAPPING`, the table that turns a Python
type into a column type when a table is created or altered from values. EdgeGate never stores numpy
values, and numpy costs more start-up than everything else a read command does (0.12 s of a 0.55 s
`runs list`). So the first import of sqlite-utils happens with numpy and pandas blocked the documented
way (a `None` entry in `sys.modules` makes `import` raise ImportError, which sqlite-utils catches), and
the mapping it built is replaced by one that adds those types the first time a lookup misses while numpy
(or pandas) is loaded. A caller that passes numpy values has numpy loaded by then, so sqlite-utils'
numpy support works exactly as before (`tests/test_sqlite_lib.py`); nobody else pays for it.

If numpy is already imported (a run, a test process), sqlite-utils is imported as is.
Every EdgeGate module imports sqlite-utils through here: `from .sqlite_lib import sqlite_utils`.
"""

from __future__ import annotations

import sys

_OPTIONAL = ("numpy", "pandas")  # what sqlite_utils.db imports opportunistically, in its order


def _numpy_types(np) -> dict:
    # The same entries sqlite_utils.db adds when numpy imports (sqlite-utils 3.x and 4.x).
    ints = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
    return {**{getattr(np, n): "INTEGER" for n in ints if hasattr(np, n)},
            **{getattr(np, n): "REAL" for n in ("float16", "float32", "float64") if hasattr(np, n)}}


class LateTypeMapping(dict):
    """sqlite-utils' COLUMN_TYPE_MAPPING, plus numpy's and pandas' types once those are imported."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._added: set[str] = set()

    def _add_loaded(self) -> bool:
        added = False
        for name in _OPTIONAL:
            module = sys.modules.get(name)
            if module is None or name in self._added:
                continue
            self._added.add(name)
            self.update(_numpy_types(module) if name == "numpy" else {module.Timestamp: "TEXT"})
            added = True
        return added

    def __missing__(self, key):
        if self._add_loaded() and key in self:
            return self[key]
        raise KeyError(key)

    def get(self, key, default=None):
        try:
            return self[key]
        except KeyError:
            return default

    def __contains__(self, key) -> bool:
        return super().__contains__(key) or (self._add_loaded() and super().__contains__(key))


def _import_sqlite_utils():
    if "sqlite_utils" in sys.modules or "numpy" in sys.modules:
        import sqlite_utils

        return sqlite_utils
    blocked = [name for name in _OPTIONAL if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # "import numpy" now raises ModuleNotFoundError (importlib docs)
    try:
        import sqlite_utils
        import sqlite_utils.db as db
    finally:
        for name in blocked:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]
    db.COLUMN_TYPE_MAPPING = LateTypeMapping(db.COLUMN_TYPE_MAPPING)
    return sqlite_utils


sqlite_utils = _import_sqlite_utils()
Migrations = sqlite_utils.Migrations
