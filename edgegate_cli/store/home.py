"""Where EdgeGate keeps its state (SPEC §1): resolving, creating and describing the home.

Resolution order: --home DIR > EDGEGATE_HOME > nearest `.edgegate/` walking up from the current
directory (like `.git`) > the per-user data directory (platformdirs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

HOME_DIRNAME = ".edgegate"


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

    def ensure(self) -> Home:
        """Create the home's directories (idempotent) and return self."""
        for p in (self.path, self.cas_path, self.keys_path):
            p.mkdir(parents=True, exist_ok=True)
        os.chmod(self.keys_path, 0o700)
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


def init_home(directory: Path | None = None) -> Home:
    """Create `.edgegate/` in `directory` (default: the current directory)."""
    return Home((directory or Path.cwd()).resolve() / HOME_DIRNAME, ".edgegate").ensure()
