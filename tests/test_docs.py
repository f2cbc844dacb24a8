"""The docs say what the code does: docs/cli.md is the commands' own --help."""

from __future__ import annotations

import runpy
from pathlib import Path

from typer.main import get_command

from app.cli import cli

ROOT = Path(__file__).resolve().parents[1]
GEN = runpy.run_path(str(ROOT / "docs" / "gen_cli.py"))


def test_cli_page_is_the_current_help_text() -> None:
    assert (ROOT / "docs" / "cli.md").read_text() == GEN["render"](), (
        "docs/cli.md is out of date: run .venv/bin/python docs/gen_cli.py"
    )


def test_every_command_is_documented() -> None:
    page = (ROOT / "docs" / "cli.md").read_text()
    paths = GEN["command_paths"](get_command(cli))
    assert len(paths) >= 13
    for path in paths:
        assert f"## `tidings {' '.join(path)}`" in page
