"""An opened home: its state database and its CAS, handed to every core function that needs them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..context import Context
from .cas import CAS
from .home import Home, resolve_home
from .state import StateDatabase, open_state


@dataclass
class Workspace:
    home: Home
    db: StateDatabase
    cas: CAS

    @property
    def ctx(self) -> Context:
        """The invocation this workspace was opened for (its clock, secrets, settings)."""
        return self.db.ctx


def open_workspace(home: Home | None = None, *, ctx: Context | None = None, reap: bool = True,
                   on_open=None) -> Workspace:
    """Resolve and open the home (creating it if needed), migrated and ready, for invocation `ctx`
    (default: a fresh Context; its `settings.home` is --home).

    `on_open(home)` is called once the home is known (the CLI uses it for --verbose).
    With reap=True, runs whose process died are marked `error: ABANDONED` first (SPEC §2).
    """
    ctx = ctx or Context()
    home = (home or resolve_home(ctx.settings.home)).ensure()
    if on_open:
        on_open(home)
    db = open_state(home.db_path, ctx=ctx)
    ws = Workspace(home=home, db=db, cas=CAS(home.cas_path))
    if reap:
        from .runs import reap_abandoned

        reap_abandoned(db)
    return ws


def open_workspace_at(path: Path | str) -> Workspace:
    return open_workspace(Home(Path(path).resolve(), "--home"))
