"""Settings fail loudly on a malformed value: checked in a fresh interpreter each time."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def manage_check(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("ANYMAIL_")}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
        cwd=ROOT,
        env={**clean, "DEBUG": "false", "SECRET_KEY": "s3cret", "ALLOWED_HOSTS": "x", **env},
        capture_output=True,
        text=True,
    )


def test_production_without_webhook_credentials_fails_the_checks() -> None:
    result = manage_check()
    assert result.returncode != 0
    assert "newsletter.E001" in result.stderr and "ANYMAIL_WEBHOOK_SECRET" in result.stderr


def test_webhook_credentials_may_list_several_to_rotate() -> None:
    assert manage_check(ANYMAIL_WEBHOOK_SECRET="new:pass").returncode == 0
    result = subprocess.run(
        [sys.executable, "-c", "from config import settings; print(settings.ANYMAIL)"],
        cwd=ROOT,
        env={**os.environ, "ANYMAIL_WEBHOOK_SECRET": "new:pass, old:word"},
        capture_output=True,
        text=True,
    )
    assert "'WEBHOOK_SECRET': ['new:pass', 'old:word']" in result.stdout


def test_production_settings_pass_every_deployment_check() -> None:
    clean = {k: v for k, v in os.environ.items() if k in {"PATH", "HOME"}}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=clean
        | {
            "DEBUG": "false",
            "SECRET_KEY": "x7Gq2-vL9pR4mZ8sT1wK6yB3nC5dF0hJ" * 2,
            "SITE_URL": "https://paperboy.example.org",
            "ANYMAIL_WEBHOOK_SECRET": "hook:s3cret",
        },
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_an_arxiv_category_that_is_none_is_refused() -> None:
    result = load_settings(PAPERS_ARXIV_CATEGORIES="cs.LG,machine learning")
    assert "'machine learning' is no arXiv category, use e.g. cs.LG,stat.ML" in result.stderr


def test_admins_must_be_addresses() -> None:
    result = load_settings(ADMINS="Ops <ops@example.org>, nobody")
    assert "Unexpected value ADMINS=Ops <ops@example.org>, nobody" in result.stderr


@pytest.mark.parametrize(
    ("env", "installed"),
    [
        ({"DEBUG": "true"}, True),
        ({"DEBUG": "false"}, False),
        ({"DEBUG": "false", "DEVTOOLS": "true"}, True),
        ({"DEBUG": "true", "DEVTOOLS": "false"}, False),
    ],
)
def test_the_development_tools_are_an_app_with_debug_or_when_devtools_says_so(
    env: dict[str, str], installed: bool
) -> None:
    clean = {k: v for k, v in os.environ.items() if k != "DEVTOOLS"}
    result = subprocess.run(
        [sys.executable, "-c", "from config import settings; print(settings.INSTALLED_APPS)"],
        cwd=ROOT,
        env=clean | {"SECRET_KEY": "s3cret"} | env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert ("'devtools'" in result.stdout) is installed
