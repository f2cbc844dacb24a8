"""The `tidings` command as a person uses it: help, errors that say what to do, JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent / "tidings"
COMMANDS = [
    ["serve"], ["smtp"], ["web"], ["worker"], ["db", "upgrade"], ["team", "create"],
    ["team", "list"], ["team", "checkin"], ["member", "add"], ["member", "list"],
    ["checkin", "send"], ["digest", "run"], ["token", "create"], ["quarantine", "list"],
    ["search", "reindex"],
]  # fmt: skip


def run(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env["TIDINGS_DATA_DIR"] = str(data_dir)
    return subprocess.run([str(BIN), *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(tmp_path: Path, command: list[str]) -> None:
    result = run(tmp_path, *command, "--help")
    assert result.returncode == 0
    description = result.stdout.split("Options:")[0]
    assert len(description.split()) >= 6, f"`tidings {' '.join(command)} --help` says too little"
    assert "Example: " in description and "tidings " + command[0] in description


def test_commands_before_setup_say_to_upgrade(tmp_path: Path) -> None:
    result = run(tmp_path, "team", "list")
    assert result.returncode == 1
    assert "tidings db upgrade" in result.stderr


def test_a_first_team_with_clear_errors(tmp_path: Path) -> None:
    assert run(tmp_path, "db", "upgrade").returncode == 0
    created = run(tmp_path, "team", "create", "eng", "--name", "Engineering")
    assert created.returncode == 0 and "eng@localhost" in created.stderr

    again = run(tmp_path, "team", "create", "eng")
    assert again.returncode == 1 and "already exists" in again.stderr

    bad_slug = run(tmp_path, "team", "create", "Eng Team!")
    assert bad_slug.returncode == 1 and "lower-case letters" in bad_slug.stderr

    typo = run(tmp_path, "member", "add", "eng", "bob@example.org", "--tz", "America/NewYork")
    assert typo.returncode == 1 and "Did you mean America/New_York" in typo.stderr

    no_team = run(tmp_path, "member", "add", "ops", "bob@example.org")
    assert no_team.returncode == 1 and "tidings team list" in no_team.stderr

    added = run(
        tmp_path,
        "member",
        "add",
        "eng",
        "Bob@Example.org",
        "--name",
        "Bob",
        "--tz",
        "America/New_York",
        "--digest",
        "weekly",
        "--hour",
        "7",
    )
    assert added.returncode == 0
    members = json.loads(run(tmp_path, "member", "list", "eng", "--json").stdout)
    assert members == [
        {
            "email": "bob@example.org",
            "name": "Bob",
            "timezone": "America/New_York",
            "digest": "weekly",
            "hour": 7,
            "schedule": "weekly on mon at 07:00 America/New_York; quiet 20:00-08:00",
        }
    ]
    teams = json.loads(run(tmp_path, "team", "list", "--json").stdout)
    assert teams == [{"slug": "eng", "name": "Engineering", "address": "eng@localhost"}]


def test_token_is_alone_on_the_last_line_of_stdout(tmp_path: Path) -> None:
    run(tmp_path, "db", "upgrade")
    run(tmp_path, "team", "create", "eng")
    result = run(tmp_path, "token", "create", "--team", "eng")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [result.stdout.strip()]
    assert result.stdout.strip().startswith("tid_") and len(result.stdout.strip()) > 30


def test_bad_outbound_url_is_explained(tmp_path: Path) -> None:
    run(tmp_path, "db", "upgrade")
    env_run = subprocess.run(
        [str(BIN), "digest", "run", "--now"],
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")},
            "TIDINGS_DATA_DIR": str(tmp_path),
            "TIDINGS_OUTBOUND_URL": "carrier-pigeon://x",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert env_run.returncode == 1 and "maildir:" in env_run.stderr
