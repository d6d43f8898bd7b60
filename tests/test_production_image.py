"""The production image holds the product only: no development tooling (devtools/, tests/) and
no development dependency. There is no Docker engine here, so the Dockerfile and pyproject.toml
are read, and the product's imports are checked against the dependencies the image installs."""

import re
import shlex
import tomllib
from fnmatch import fnmatch
from importlib.metadata import packages_distributions
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = (ROOT / "Dockerfile").read_text()
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PRODUCT = ("config", "papers", "newsletter")
DEVELOPMENT_ONLY = ("devtools", "tests")


def instructions(name: str) -> list[list[str]]:
    """The Dockerfile's ``name`` instructions (continuation lines joined), as words."""
    joined = DOCKERFILE.replace("\\\n", " ")
    return [shlex.split(line)[1:] for line in joined.splitlines() if line.startswith(name + " ")]


def distribution_name(requirement: str) -> str:
    """ "django-anymail[amazon-ses]>=12.0" -> "django-anymail" (normalised as pip does)."""
    return re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~; ]", requirement)[0]).lower()


def test_the_image_copies_the_product_apps_and_no_development_tooling() -> None:
    copied = {source for words in instructions("COPY") for source in words[:-1]}
    assert set(PRODUCT) <= copied
    assert "." not in copied and not copied & set(DEVELOPMENT_ONLY)


def development_only() -> set[str]:
    runtime = {distribution_name(r) for r in PYPROJECT["project"]["dependencies"]}
    development = {
        distribution_name(r) for r in PYPROJECT["project"]["optional-dependencies"]["dev"]
    }
    assert {"aiosmtpd", "pytest"} <= development - runtime  # so the tests below could fail
    return development - runtime


def runtime_lock() -> dict[str, set[str]]:
    """requirements.txt as {package: what needs it}, from uv's "# via" notes."""
    needed_by: dict[str, set[str]] = {}
    package = ""
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line[:1].isalnum():
            package = distribution_name(line)
            needed_by[package] = set()
        elif line.strip().startswith("#") and package:
            why = line.strip().lstrip("#").strip().removeprefix("via").strip()
            if why and not why.startswith("-c "):
                needed_by[package].add(why)
    return needed_by


def test_the_image_installs_no_development_dependency() -> None:
    installs = " ".join(w for words in instructions("RUN") for w in words if "pip" in words)
    assert "requirements.txt" in installs
    assert "requirements-dev.txt" not in installs and "[dev]" not in installs
    lock = runtime_lock()
    assert lock
    # A development tool may be in the image's lock only because a runtime package needs it
    # too (packaging: gunicorn, kombu; pyyaml: huggingface-hub).
    unneeded = {p for p in development_only() & lock.keys() if not lock[p]}
    assert unneeded == set()
    assert not development_only() & {"aiosmtpd", "pytest", "grimp"} & lock.keys()


def test_the_installed_packages_are_the_product_apps_only() -> None:
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert set(DEVELOPMENT_ONLY) <= packages  # so the next line could fail
    assert {p for p in packages if any(fnmatch(p, pattern) for pattern in include)} == set(PRODUCT)


def test_the_product_imports_no_development_dependency() -> None:
    graph = grimp.build_graph(*PRODUCT, include_external_packages=True, cache_dir=None)
    distributions = packages_distributions()
    imported = {
        module
        for package in PRODUCT
        for m in graph.find_descendants(package) | {package}
        for module in graph.find_modules_directly_imported_by(m)
        if module.split(".")[0] not in PRODUCT
    }
    offending = {
        module
        for module in imported
        if {distribution_name(d) for d in distributions.get(module, [])} & development_only()
    }
    assert offending == set(), f"product code imports development-only packages: {offending}"
