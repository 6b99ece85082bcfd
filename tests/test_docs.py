"""The README is the user's first contact: it must document every command and the real exit codes."""

from __future__ import annotations

import re

import pytest
import typer.main
from conftest import REPO

from edgegate_cli.cli import app
from edgegate_cli.errors import ExitCode

README = (REPO / "README.md").read_text(encoding="utf-8")


def command_paths(group=None, prefix=()):
    group = group or typer.main.get_command(app)
    for name, cmd in sorted(group.commands.items()):
        path = (*prefix, name)
        if getattr(cmd, "commands", None):
            yield from command_paths(cmd, path)
        else:
            yield " ".join(path)


@pytest.mark.parametrize("command", sorted(command_paths()))
def test_every_command_appears_in_the_readme_with_an_example(command):
    """Each command appears in a heading or in an example line `edgegate <command> …`."""
    assert f"edgegate {command}" in README, f"README lacks `edgegate {command}`"


def test_exit_code_table_matches_the_code():
    section = README.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(m.group(1)) for m in re.finditer(r"^\| (\d+) \|", section, re.M)}
    assert documented == {int(c) for c in ExitCode}


def test_quickstart_has_exactly_the_two_commands_ci_runs():
    section = README.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.+?)\n```", section)
    assert commands == [
        "python3 -m pip install -q uv && uv run --frozen edgegate run examples/quickstart/pipeline.yaml",
        "python3 -m pip install -q uv && uv run --frozen pytest",
    ]
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert commands[1] in ci
