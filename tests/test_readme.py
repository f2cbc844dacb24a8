"""The README's two commands are what make and CI actually run."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    first_block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", readme, re.S)
    assert first_block, "README needs a code block with the commands"
    commands = [line.strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands[:2] == ["make run", "make test"]


def test_make_targets_exist_and_create_the_venv() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target in ("run", "test"):
        match = re.search(rf"^{target}: (.*)$", makefile, re.M)
        assert match, f"Makefile has no {target} target"
        assert "$(STAMP)" in match.group(1), f"make {target} must set up .venv first"
    assert "-m venv" in makefile
    assert re.search(r"^run:.*\n\t\$\(BIN\)/tidings serve$", makefile, re.M)
    assert re.search(r"^test:.*\n(\t.*\n)*\t\$\(BIN\)/pytest", makefile, re.M)


def test_ci_runs_make_test() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, re.M)
    assert "pg_ctlcluster" in ci  # starts PostgreSQL when it is down
