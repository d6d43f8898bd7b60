"""docker-compose.yml cannot run here (no Docker engine), so its wiring is checked by reading."""

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def module_exists(dotted: str) -> bool:
    path = ROOT / dotted.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def test_compose_runs_web_worker_beat_database_redis_and_a_mail_catcher() -> None:
    assert {"web", "worker", "beat", "db", "redis", "mailpit"} <= set(COMPOSE["services"])


def test_each_service_command_names_modules_that_exist() -> None:
    for name in ("web", "worker", "beat"):
        command = COMPOSE["services"][name]["command"]
        words = shlex.split(command if isinstance(command, str) else shlex.join(command))
        for wsgi in re.findall(r"([\w.]+):application", command):
            assert module_exists(wsgi), f"{name}: {wsgi} is not a module"
        if "celery" in words:
            app = words[words.index("-A") + 1]
            assert module_exists(f"{app}.celery"), f"{name}: celery app {app} not found"
        if "manage.py" in command:
            assert (ROOT / "manage.py").exists()


def interpolate(value: object, dotenv: dict[str, str]) -> str:
    """Compose's ${VAR:-default} and ${VAR:?error}: the .env value when set and not empty."""

    def one(match: re.Match[str]) -> str:
        name, kind, rest = match.groups()
        if dotenv.get(name):
            return dotenv[name]
        if kind == "?":
            raise LookupError(f"{name}: {rest}")
        return rest

    return re.sub(r"\$\{(\w+):([-?])([^}]*)\}", one, str(value))


def app_environment(name: str, dotenv: dict[str, str]) -> dict[str, str]:
    raw = COMPOSE["services"][name]["environment"]
    return {key: interpolate(value, dotenv) for key, value in raw.items()}


DEPLOYER = {"SECRET_KEY": "k" * 64, "ANYMAIL_WEBHOOK_SECRET": "hooks:" + "s" * 40}


def test_the_app_services_reach_postgres_redis_and_the_mail_catcher() -> None:
    for name in ("web", "worker", "beat"):
        env = app_environment(name, DEPLOYER)
        assert env["DATABASE_URL"].startswith("postgres://") and "@db:" in env["DATABASE_URL"]
        assert env["CELERY_BROKER_URL"].startswith("redis://redis:")
        assert env["EMAIL_HOST"] == "mailpit"


def test_every_environment_variable_the_settings_read_is_documented() -> None:
    settings_text = (ROOT / "config" / "settings.py").read_text()
    read = set(re.findall(r'env_\w+\("([A-Z_]+)"', settings_text))
    read |= set(re.findall(r'os\.environ\.get\("([A-Z_]+)"', settings_text))
    documented = set(re.findall(r"^#? ?([A-Z][A-Z_]+)=", (ROOT / ".env.example").read_text(), re.M))
    assert read - documented == set()


def test_compose_will_not_start_without_the_secrets_from_env() -> None:
    # An .env copied from .env.example leaves both empty: a default would sign every
    # reader's links with a key anyone can read here.
    empty = {"SECRET_KEY": "", "ANYMAIL_WEBHOOK_SECRET": ""}
    for secret in empty:
        with pytest.raises(LookupError, match=secret):
            app_environment("web", {**DEPLOYER, secret: ""})


def test_what_the_operator_sets_in_env_replaces_every_default() -> None:
    raw = COMPOSE["services"]["web"]["environment"]
    mine = {key: f"value-of-{key}" for key in raw}
    assert app_environment("web", mine) == mine


def test_the_compose_environment_passes_the_deployment_checks() -> None:
    env = app_environment("web", DEPLOYER)
    keep = {"PATH", "HOME", "VIRTUAL_ENV", "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if k in keep} | env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
