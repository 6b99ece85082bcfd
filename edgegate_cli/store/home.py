"""Where EdgeGate keeps its state (SPEC §1): resolving, creating and describing the home.

Resolution order: --home DIR > EDGEGATE_HOME > nearest `.edgegate/` walking up from the current
directory (like `.git`) > the per-user data directory (platformdirs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import HomeUnusable

HOME_DIRNAME = ".edgegate"
SOURCE_TEXT = {"--home": "--home", "EDGEGATE_HOME": "EDGEGATE_HOME", ".edgegate": ".edgegate/ above the current "
               "directory", "user-data-dir": "the per-user data directory"}


@dataclass(frozen=True)
class Home:
    path: Path
    source: str  # "--home", "EDGEGATE_HOME", ".edgegate", "user-data-dir"

    @property
    def db_path(self) -> Path:
        return self.path / "state.db"

    @property
    def cas_path(self) -> Path:
        return self.path / "cas"

    @property
    def keys_path(self) -> Path:
        return self.path / "keys"

    @property
    def exists(self) -> bool:
        return self.db_path.is_file()

    def check_usable(self) -> None:
        """Raise HomeUnusable when the path cannot be a home (a file, an unreadable directory, a name too long)."""
        try:
            if self.path.exists() and not self.path.is_dir():
                raise HomeUnusable(f"{self.path}: is a file, not a home directory (from {SOURCE_TEXT[self.source]})",
                                   hint="point --home (or EDGEGATE_HOME) at a directory")
        except OSError as exc:
            raise HomeUnusable(f"{self.path}: cannot be used as a home ({exc.strerror or exc})") from None

    @property
    def writable(self) -> bool:
        """Can this process write the home (its directory, and its state database if there is one)?"""
        return os.access(self.path, os.W_OK) and (not self.db_path.exists() or os.access(self.db_path, os.W_OK))

    def ensure(self) -> Home:
        """Create the home's missing directories and return self. Nothing is touched that exists already, so a
        read-only home stays readable; keys/ is created mode 0700. Raises HomeUnusable when it cannot be created."""
        self.check_usable()
        try:
            for p in (self.path, self.cas_path):
                if not p.is_dir():
                    p.mkdir(parents=True, exist_ok=True)
            if not self.keys_path.is_dir():
                self.keys_path.mkdir(mode=0o700, exist_ok=True)
                os.chmod(self.keys_path, 0o700)  # mkdir's mode is filtered by the umask
        except OSError as exc:
            raise HomeUnusable(f"{self.path}: cannot create the home here ({exc.strerror or exc})",
                               hint="point --home (or EDGEGATE_HOME) at a writable directory") from None
        return self


def find_dot_home(start: Path) -> Path | None:
    """Return the nearest `.edgegate/` directory at or above `start`, or None."""
    for directory in (start, *start.parents):
        candidate = directory / HOME_DIRNAME
        if candidate.is_dir():
            return candidate
    return None


def resolve_home(explicit: str | os.PathLike | None = None, cwd: Path | None = None) -> Home:
    """Resolve the home directory without creating it; `explicit` is --home (`Context.settings.home`)."""
    if explicit:
        return Home(Path(explicit).expanduser().resolve(), "--home")
    env = os.environ.get("EDGEGATE_HOME")
    if env:
        return Home(Path(env).expanduser().resolve(), "EDGEGATE_HOME")
    found = find_dot_home((cwd or Path.cwd()).resolve())
    if found:
        return Home(found, ".edgegate")
    import platformdirs

    return Home(Path(platformdirs.user_data_dir("edgegate", appauthor=False)), "user-data-dir")


def init_home(explicit: str | os.PathLike | None = None) -> Home:
    """Create the home `explicit` (--home) if given, else `.edgegate/` in the current directory."""
    if explicit:
        return Home(Path(explicit).expanduser().resolve(), "--home").ensure()
    return Home(Path.cwd().resolve() / HOME_DIRNAME, ".edgegate").ensure()


def home_note(home: Home, pipeline: str | os.PathLike | None = None, cwd: Path | None = None) -> str | None:
    """One line naming the home when the user may not expect it: found implicitly (not --home or EDGEGATE_HOME)
    and either not the `.edgegate/` beside the pipeline, or the per-user data directory (no `.edgegate/` above
    the current directory). None otherwise."""
    if home.source in ("--home", "EDGEGATE_HOME"):
        return None  # the user named it
    if pipeline:
        try:
            beside = find_dot_home(Path(pipeline).resolve().parent)
        except OSError:
            beside = None
        if beside is not None and beside != home.path:
            return f"home: {home.path} (from {SOURCE_TEXT[home.source]}), not {beside} beside the pipeline"
    if home.source == "user-data-dir":
        where = (cwd or Path.cwd()).resolve()
        return (f"home: {home.path} (the per-user data directory: no .edgegate/ above {where}; "
                "`edgegate init` makes one)")
    return None
