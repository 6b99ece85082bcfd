"""An opened home: its state database and its CAS, handed to every core function that needs them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlite_utils

from .cas import CAS
from .home import Home, resolve_home
from .state import open_state


@dataclass
class Workspace:
    home: Home
    db: sqlite_utils.Database
    cas: CAS


def open_workspace(home: Home | None = None, *, reap: bool = True, on_open=None) -> Workspace:
    """Resolve and open the home (creating it if needed), migrated and ready.

    `on_open(home)` is called once the home is known (the CLI uses it for --verbose).
    With reap=True, runs whose process died are marked `error: ABANDONED` first (SPEC §2).
    """
    home = (home or resolve_home()).ensure()
    if on_open:
        on_open(home)
    db = open_state(home.db_path)
    ws = Workspace(home=home, db=db, cas=CAS(home.cas_path))
    if reap:
        from .runs import reap_abandoned

        reap_abandoned(db)
    return ws


def open_workspace_at(path: Path | str) -> Workspace:
    return open_workspace(Home(Path(path).resolve(), "--home"))
