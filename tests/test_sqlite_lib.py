"""sqlite_lib.py: sqlite-utils imported without numpy, and its numpy support intact for callers that use it."""

from __future__ import annotations

import json
import subprocess
import sys

USE_NUMPY = """
import json, sys
{imports}
import numpy as np
db = sqlite_utils.Database(memory=True)
db["t"].insert({{"i": np.int64(3), "f": np.float32(1.5), "u": np.uint8(7)}})
db["t2"].create({{"a": np.int32, "b": np.float64}})
print(json.dumps({{"numpy_at_import": {numpy_at_import},
                  "columns": [{{c.name: c.type for c in db[t].columns}} for t in ("t", "t2")],
                  "values": [[v.hex() if isinstance(v, bytes) else v for v in r.values()] for r in db["t"].rows]}}))
"""


def _run(imports: str, numpy_at_import: str) -> dict:
    code = USE_NUMPY.format(imports=imports, numpy_at_import=numpy_at_import)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_sqlite_utils_comes_without_numpy_and_still_types_numpy_values_as_before():
    """Through sqlite_lib, importing sqlite-utils loads no numpy; a caller that then inserts numpy values or
    creates columns of numpy types gets exactly what plain sqlite-utils (which imported numpy) gives."""
    ours = _run("from edgegate_cli.store.sqlite_lib import sqlite_utils\nloaded = 'numpy' in sys.modules",
                "loaded")
    plain = _run("import numpy, sqlite_utils", "True")
    assert ours["numpy_at_import"] is False and plain["numpy_at_import"] is True
    assert ours["columns"] == plain["columns"] == [{"i": "INTEGER", "f": "REAL", "u": "INTEGER"},
                                                   {"a": "INTEGER", "b": "REAL"}]
    assert ours["values"] == plain["values"]


def test_the_guard_leaves_numpy_importable_and_unblocked():
    """The block lasts only while sqlite-utils imports: numpy imports normally afterwards, and when numpy was
    loaded first, sqlite-utils is imported as it is."""
    code = ("import sys\nfrom edgegate_cli.store.sqlite_lib import sqlite_utils\n"
            "assert 'numpy' not in sys.modules and sys.modules.get('numpy', 1) is not None\n"
            "import numpy\nprint(numpy.__name__, type(sqlite_utils.db.COLUMN_TYPE_MAPPING).__name__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout.split()) == (0, ["numpy", "LateTypeMapping"]), proc.stderr
    code = ("import numpy\nfrom edgegate_cli.store.sqlite_lib import sqlite_utils\n"
            "print(type(sqlite_utils.db.COLUMN_TYPE_MAPPING).__name__, sqlite_utils.db.np is numpy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert (proc.returncode, proc.stdout.split()) == (0, ["dict", "True"]), proc.stderr
