"""The Dockerfile and the compose files, checked without a Docker engine: their facts,
and the image's steps replayed.

No engine runs on these machines, so the image's install step (`pip install .` of the
copied sources, not editable) and its entry point are run in a fresh virtualenv: the
packaging (migrations, templates) must work outside a checkout.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

import yaml

from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SCALED = yaml.safe_load((ROOT / "docker-compose.scaled.yml").read_text())


def instructions(name: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", DOCKERFILE)
    return [m.group(1).strip() for m in re.finditer(rf"^{name}\s+(.*)$", joined, re.M)]


def test_dockerfile_states_the_runtime_facts() -> None:
    assert len(instructions("FROM")) == 2, "multi-stage: build, then a slim runtime"
    assert all("slim" in base for base in instructions("FROM"))
    assert instructions("USER") and instructions("USER")[-1] not in ("root", "0")
    assert {p for line in instructions("EXPOSE") for p in line.split()} == {"2525", "8000"}
    assert any("/healthz" in h for h in instructions("HEALTHCHECK"))
    assert instructions("CMD") == ['["tidings", "serve"]']
    assert any("/app/var" in v for v in instructions("VOLUME"))


def test_every_file_the_dockerfile_copies_exists() -> None:
    for line in instructions("COPY"):
        if line.startswith("--from"):
            continue
        *sources, _target = line.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file in the project"


def test_the_image_install_steps_work_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    src, env_dir = tmp_path / "src", tmp_path / "venv"
    for line in instructions("COPY"):  # the build stage's COPY lines, as Docker runs them
        if line.startswith("--from"):
            continue
        *sources, _target = line.split()
        for source in sources:
            path = ROOT / source
            if path.is_dir():
                shutil.copytree(path, src / source, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                src.mkdir(exist_ok=True)
                shutil.copy(path, src / source)
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    pip = [str(python), "-m", "pip", "install", "--quiet", "--no-cache-dir", str(src)]
    subprocess.run(pip, check=True, timeout=600)
    data = tmp_path / "var"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(TIDINGS_DATA_DIR=str(data), TIDINGS_TEMPLATES_DIR=str(src / "templates"))
    tidings = str(env_dir / "bin" / "tidings")
    for args in (["--help"], ["db", "upgrade"], ["team", "create", "eng"], ["team", "list"]):
        result = subprocess.run(
            [tidings, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120
        )
        assert result.returncode == 0, f"tidings {' '.join(args)}: {result.stderr}"
    assert "eng@localhost" in result.stdout
    # The installed package, not this checkout, is what ran.
    where = subprocess.run(
        [str(python), "-c", "import app; print(app.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    ).stdout
    assert str(env_dir) in where and sys.prefix not in where


def _settings_named(service: dict[str, Any]) -> set[str]:
    return {k for k in service.get("environment", {}) if k.startswith("TIDINGS_")}


def test_compose_runs_tidings_on_postgres_with_the_image_defaults() -> None:
    tidings, postgres = COMPOSE["services"]["tidings"], COMPOSE["services"]["postgres"]
    assert tidings["build"] == "." and "command" not in tidings  # the image's `tidings serve`
    assert set(tidings["ports"]) == {"2525:2525", "8000:8000"}
    assert "tidings-var:/app/var" in tidings["volumes"]
    url = tidings["environment"]["TIDINGS_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://") and "@postgres:5432/" in url
    assert tidings["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])


def test_the_scaled_example_runs_each_part_apart_after_one_migration() -> None:
    services = SCALED["services"]
    assert services["migrate"]["command"] == ["tidings", "db", "upgrade"]
    parts = {name: services[name] for name in ("smtp", "web", "worker")}
    for name, service in parts.items():
        assert service["command"] == ["tidings", name]
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["environment"] == services["migrate"]["environment"]
        # Reply tokens signed by one process must verify in another.
        assert "?" in service["environment"]["TIDINGS_SECRET_KEY"]
    assert parts["smtp"]["ports"] == ["2525:2525"] and parts["web"]["ports"] == ["8000:8000"]
    # The image's HEALTHCHECK asks /healthz, which only the web part serves.
    assert "2525" in " ".join(parts["smtp"]["healthcheck"]["test"])
    assert "9100/metrics" in " ".join(parts["worker"]["healthcheck"]["test"])


def test_compose_files_name_only_settings_that_exist_and_commands_that_run() -> None:
    known = {f"TIDINGS_{name.upper()}" for name in Settings.model_fields}
    for compose in (COMPOSE, SCALED):
        for name, service in compose["services"].items():
            assert _settings_named(service) <= known, (name, _settings_named(service) - known)
    for service in SCALED["services"].values():
        command = service.get("command")
        if command:
            tidings = Path(sys.executable).parent / "tidings"
            result = subprocess.run(
                [str(tidings), *command[1:], "--help"], capture_output=True, text=True, timeout=60
            )
            assert result.returncode == 0, (command, result.stderr)
