"""What a deployment installs (issue 22): the lock files pin every dependency of pyproject.toml
to one exact version with hashes, `make` and the Dockerfile install only from them, and the
weekly audit and Dependabot watch them. The build machines cannot reach the advisory services,
so the workflow files are checked by reading."""

import re
import tomllib
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def locked(name: str) -> dict[str, tuple[Version, list[str]]]:
    """A uv/pip-tools lock file as {package: (version, hashes)}."""
    text = (ROOT / name).read_text().replace("\\\n", " ")
    pins: dict[str, tuple[Version, list[str]]] = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, _, options = line.partition(" --hash")
        found = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)(\s*;.*)?", requirement.strip())
        assert found, f"{name}: not an exact pin: {line[:80]}"
        pins[canonicalize_name(found[1])] = (
            Version(found[2]),
            re.findall(r"sha256:[0-9a-f]{64}", options),
        )
    return pins


RUNTIME, DEVELOPMENT = locked("requirements.txt"), locked("requirements-dev.txt")


def unlocked(requirements: list[str], lock: dict[str, tuple[Version, list[str]]]) -> list[str]:
    """The requirements the lock misses, or pins at a version they do not allow."""
    missing = []
    for line in requirements:
        requirement = Requirement(line)
        pin = lock.get(canonicalize_name(requirement.name))
        if pin is None or not requirement.specifier.contains(pin[0], prereleases=True):
            missing.append(f"{line} (locked: {pin[0] if pin else 'nothing'})")
    return missing


def test_every_dependency_is_locked_at_a_version_pyproject_allows() -> None:
    # Failing? Run `make lock` after changing pyproject.toml, and commit both lock files.
    runtime, dev = PYPROJECT["dependencies"], PYPROJECT["optional-dependencies"]["dev"]
    assert unlocked(runtime, RUNTIME) == []
    assert unlocked(runtime + dev, DEVELOPMENT) == []


def test_every_locked_package_has_hashes_and_the_image_gets_the_versions_ci_tested() -> None:
    for lock in (RUNTIME, DEVELOPMENT):
        assert [name for name, (_, hashes) in lock.items() if not hashes] == []
    assert {name: pin[0] for name, pin in RUNTIME.items()} == {
        name: DEVELOPMENT[name][0] for name in RUNTIME
    }


def test_make_and_the_dockerfile_install_only_from_the_lock_files() -> None:
    makefile = (ROOT / "Makefile").read_text()
    install = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", makefile, re.M)
    assert install, "no install rule in the Makefile"
    pips = [line for line in install[1].splitlines() if "pip install" in line]
    assert "--require-hashes --requirement requirements-dev.txt" in pips[0]
    assert all("--no-deps" in line for line in pips[1:])
    assert re.search(r"^lock:", makefile, re.M)

    dockerfile = (ROOT / "Dockerfile").read_text()
    runs = re.findall(r"pip install [^\n&]*", dockerfile)
    assert "--require-hashes --requirement requirements.txt" in runs[0]
    assert all("--no-deps" in run for run in runs[1:])


def test_a_workflow_audits_the_lock_files_weekly_and_when_they_change() -> None:
    workflow = yaml.safe_load((ROOT / ".github/workflows/pip-audit.yml").read_text())
    triggers = workflow.get("on") or workflow[True]  # YAML 1.1 reads a bare `on` as True
    assert re.fullmatch(r"\S+ \S+ \* \* [0-6]", triggers["schedule"][0]["cron"])  # weekly
    for event in ("push", "pull_request"):
        assert {"requirements.txt", "requirements-dev.txt"} <= set(triggers[event]["paths"])
    [audit] = [
        step
        for job in workflow["jobs"].values()
        for step in job["steps"]
        if "pip-audit" in step.get("uses", "")
    ]
    assert audit["with"]["inputs"].split() == ["requirements.txt", "requirements-dev.txt"]
    assert audit["with"]["require-hashes"] is True


@pytest.mark.parametrize("ecosystem", ["pip", "docker", "github-actions"])
def test_dependabot_proposes_updates_of_the_lock_files_image_and_actions(ecosystem: str) -> None:
    config = yaml.safe_load((ROOT / ".github/dependabot.yml").read_text())
    assert config["version"] == 2
    [update] = [u for u in config["updates"] if u["package-ecosystem"] == ecosystem]
    assert update["directory"] == "/" and update["schedule"]["interval"] in ("daily", "weekly")
