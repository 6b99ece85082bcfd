"""Home resolution (SPEC §1): --home > EDGEGATE_HOME > nearest .edgegate/ > the user data dir."""

from __future__ import annotations

import json
import os

from edgegate_cli.store.home import resolve_home


def test_env_var_wins_over_dot_home(tmp_path, monkeypatch, fresh_home):
    (tmp_path / "proj" / ".edgegate").mkdir(parents=True)
    assert resolve_home(cwd=tmp_path / "proj").path == fresh_home.resolve()


def test_explicit_wins_over_env(tmp_path):
    home = resolve_home(tmp_path / "explicit")
    assert (home.path, home.source) == ((tmp_path / "explicit").resolve(), "--home")


def test_nearest_dot_home_walking_up(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGEGATE_HOME")
    (tmp_path / "proj" / ".edgegate").mkdir(parents=True)
    (tmp_path / "proj" / "src" / "deep").mkdir(parents=True)
    home = resolve_home(cwd=tmp_path / "proj" / "src" / "deep")
    assert (home.path, home.source) == ((tmp_path / "proj" / ".edgegate").resolve(), ".edgegate")


def test_user_data_dir_last(homeless_dir, monkeypatch):
    monkeypatch.delenv("EDGEGATE_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(homeless_dir / "xdg"))
    home = resolve_home(cwd=homeless_dir)
    assert (home.path, home.source) == (homeless_dir / "xdg" / "edgegate", "user-data-dir")


def test_init_creates_dot_home_used_by_later_commands(tmp_path, monkeypatch, invoke):
    monkeypatch.delenv("EDGEGATE_HOME")
    monkeypatch.chdir(tmp_path)
    doc = json.loads(invoke("init", "--json").stdout)
    assert doc["home"] == str(tmp_path / ".edgegate")
    assert sorted(os.listdir(tmp_path / ".edgegate")) == ["cas", "keys", "state.db", "state.db-shm", "state.db-wal"]
    assert oct(os.stat(tmp_path / ".edgegate" / "keys").st_mode & 0o777) == "0o700"
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    status = json.loads(invoke("status", "--json").stdout)
    assert (status["home"], status["home_source"]) == (str(tmp_path / ".edgegate"), ".edgegate")


def test_verbose_names_the_home_and_home_option_outranks_env(tmp_path, invoke):
    (tmp_path / "h").mkdir()
    result = invoke("--home", tmp_path / "h", "--verbose", "status")
    assert f"home: {tmp_path / 'h'} (from --home)" in result.stderr
    assert (tmp_path / "h" / "state.db").is_file()
