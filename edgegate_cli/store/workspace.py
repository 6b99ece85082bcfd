"""An opened home: its state database and its CAS, handed to every core function that needs them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..context import Context
from ..errors import HomeUnusable
from .cas import CAS
from .home import Home, resolve_home
from .state import StateDatabase, open_state


@dataclass
class Workspace:
    home: Home
    db: StateDatabase
    cas: CAS
    readonly: bool = False  # a read-only home opened by a command that only reads

    @property
    def ctx(self) -> Context:
        """The invocation this workspace was opened for (its clock, secrets, settings)."""
        return self.db.ctx


def open_workspace(home: Home | None = None, *, ctx: Context | None = None, reap: bool = True,
                   on_open=None, write: bool = True, create: bool = False) -> Workspace:
    """Resolve and open the home, migrated and ready, for invocation `ctx` (default: a fresh Context; its
    `settings.home` is --home).

    A home found by EDGEGATE_HOME, `.edgegate/` or the user data directory is created when missing; an
    explicit --home must exist unless `create` (`init`). A command that only reads (`write=False`) can use a
    read-only home, which is then opened read-only (no migration, no reaping); a writer gets HomeUnusable
    there. `on_open(home)` is called once the home is known (the CLI uses it to name the home).
    With reap=True, runs whose process died are marked `error: ABANDONED` first (SPEC §2).
    """
    ctx = ctx or Context()
    from_flag = home is None and bool(ctx.settings.home)  # a Home passed in by a caller is its own business
    home = home or resolve_home(ctx.settings.home)
    home.check_usable()
    if from_flag and not home.path.exists() and not create:
        raise HomeUnusable(f"--home {home.path}: no such directory",
                           hint=f"check the path, or create a home there with `edgegate --home {home.path} init`")
    readonly = home.path.is_dir() and not home.writable
    if readonly and write:
        raise HomeUnusable(f"{home.path}: the home is read-only, and this command changes it",
                           hint="use a writable --home; read-only commands (status, runs list/show, keys list, "
                                "verify, ...) still work here")
    if not readonly:
        home.ensure()
    if on_open:
        on_open(home)
    db = open_state(home.db_path, ctx=ctx, readonly=readonly)
    ws = Workspace(home=home, db=db, cas=CAS(home.cas_path), readonly=readonly)
    if reap and not readonly:
        from .runs import reap_abandoned

        reap_abandoned(db)
    return ws


def open_workspace_at(path: Path | str) -> Workspace:
    return open_workspace(Home(Path(path).resolve(), "--home"))
