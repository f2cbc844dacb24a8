"""Every `tidings` command explains itself: a description with an example, and help on
each argument and option. The commands come from the command tree itself, so a new
command without help text fails here (tests/test_docs.py fails when one is missing
from docs/cli.md)."""

from __future__ import annotations

import runpy
from pathlib import Path

import click
import pytest
from typer.main import get_command

from app.cli import cli

ROOT = Path(__file__).resolve().parents[1]
GEN = runpy.run_path(str(ROOT / "docs" / "gen_cli.py"))
TREE = get_command(cli)
PATHS = GEN["command_paths"](TREE)


def command_at(path: tuple[str, ...]) -> click.Command:
    command: click.Command = TREE
    for word in path:
        command = command.commands[word]  # type: ignore[attr-defined]
    return command


def test_the_tree_has_the_admin_commands() -> None:
    for path in [
        ("team", "rename"),
        ("team", "archive"),
        ("member", "import"),
        ("member", "pause"),
        ("member", "resume"),
        ("quarantine", "release"),
        ("quarantine", "discard"),
        ("digest", "resend"),
        ("secret", "rotate"),
    ]:
        assert path in PATHS


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_command_help_explains_it_with_an_example(path: tuple[str, ...]) -> None:
    text = GEN["help_text"](path)
    description = text.split("Options:")[0].split("Arguments:")[0]
    assert len(description.split()) >= 12, f"`tidings {' '.join(path)} --help` says too little"
    _, marker, example = description.partition("Example: ")
    assert marker and f"tidings {path[0]}" in example, f"`tidings {' '.join(path)}`: no example"


@pytest.mark.parametrize("path", PATHS, ids=" ".join)
def test_every_argument_and_option_has_help(path: tuple[str, ...]) -> None:
    for param in command_at(path).params:
        if param.name == "help":
            continue
        assert getattr(param, "help", None), (
            f"`tidings {' '.join(path)}`: {param.name} has no help text"
        )
