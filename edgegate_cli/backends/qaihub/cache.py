"""AI Hub ids cached in the home's state.db (migration m003): uploads by model sha256, compiled models by
(model sha256, device, options, SDK version), per AI Hub server. No token is ever stored.

Device threads share one cache: each call opens its own short-lived connection (WAL, busy timeout),
so no SQLite connection crosses a thread. Without a state database (no home) the cache lives in memory.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from ...store.state import BUSY_TIMEOUT_MS, utcnow

MODELS = "aihub_models"
COMPILES = "aihub_compiles"


class AIHubCache:
    def __init__(self, db_path: Path | str | None, api_url: str):
        self.db_path = str(db_path) if db_path else None
        self.api_url = api_url
        self._memory: dict[tuple, str] = {}
        self._lock = threading.Lock()

    def _run(self, sql: str, params: tuple) -> list[tuple]:
        with self._lock:
            conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_MS / 1000)
            try:
                with conn:
                    return conn.execute(sql, params).fetchall()
            finally:
                conn.close()

    def _get(self, table: str, column: str, key: dict) -> str | None:
        if self.db_path is None:
            return self._memory.get((table, *key.values()))
        where = " and ".join(f"{k} = ?" for k in key)
        rows = self._run(f"select {column} from {table} where api_url = ? and {where}", (self.api_url, *key.values()))
        return rows[0][0] if rows else None

    def _put(self, table: str, key: dict, values: dict, memory_value: str) -> None:
        if self.db_path is None:
            self._memory[(table, *key.values())] = memory_value
            return
        row = {"api_url": self.api_url, **key, **values, "created_at": utcnow()}
        self._run(f"insert or replace into {table} ({', '.join(row)}) values ({', '.join('?' * len(row))})",
                  tuple(row.values()))

    def _drop(self, table: str, key: dict) -> None:
        if self.db_path is None:
            self._memory.pop((table, *key.values()), None)
            return
        where = " and ".join(f"{k} = ?" for k in key)
        self._run(f"delete from {table} where api_url = ? and {where}", (self.api_url, *key.values()))

    def model_id(self, sha256: str) -> str | None:
        """The AI Hub id of the model uploaded with these bytes, if any."""
        return self._get(MODELS, "model_id", {"model_sha256": sha256})

    def put_model(self, sha256: str, model_id: str) -> None:
        self._put(MODELS, {"model_sha256": sha256}, {"model_id": model_id}, model_id)

    def drop_model(self, sha256: str) -> None:
        self._drop(MODELS, {"model_sha256": sha256})

    def target_model_id(self, sha256: str, device: str, options: str, sdk_version: str) -> str | None:
        """The AI Hub id of the model compiled from these bytes for `device` with `options`, if any."""
        return self._get(COMPILES, "target_model_id", _compile_key(sha256, device, options, sdk_version))

    def put_compiled(self, sha256: str, device: str, options: str, sdk_version: str, *, compile_job_id: str,
                     target_model_id: str) -> None:
        self._put(COMPILES, _compile_key(sha256, device, options, sdk_version),
                  {"compile_job_id": compile_job_id, "target_model_id": target_model_id}, target_model_id)

    def drop_compiled(self, sha256: str, device: str, options: str, sdk_version: str) -> None:
        self._drop(COMPILES, _compile_key(sha256, device, options, sdk_version))


def _compile_key(sha256: str, device: str, options: str, sdk_version: str) -> dict:
    return {"model_sha256": sha256, "device": device, "options": options, "sdk_version": sdk_version}
