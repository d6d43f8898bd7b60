"""Settings fail loudly on a malformed value: checked in a fresh interpreter each time."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def load_settings(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )


def test_a_malformed_boolean_names_the_variable_and_the_fix() -> None:
    result = load_settings(DEBUG="maybe")
    assert result.returncode != 0
    assert "Unexpected value DEBUG=maybe, use true or false" in result.stderr


def test_a_malformed_number_is_refused() -> None:
    result = load_settings(PAPERS_FETCH_TIMEOUT="soon")
    assert "Unexpected value PAPERS_FETCH_TIMEOUT=soon, use a whole number" in result.stderr


def test_production_without_a_secret_key_is_refused() -> None:
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    result = subprocess.run(
        [sys.executable, "-c", "import config.settings"],
        cwd=ROOT,
        env={**env, "DEBUG": "false"},
        capture_output=True,
        text=True,
    )
    assert "SECRET_KEY must be set when DEBUG=false" in result.stderr


def test_a_database_url_switches_to_postgresql() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from config import settings; print(settings.DATABASES['default']['ENGINE'])",
        ],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": "postgres://u@db:5432/p"},
        capture_output=True,
        text=True,
    )
    assert result.stdout.strip() == "django.db.backends.postgresql"
