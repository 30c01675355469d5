"""Sessions for every marginkit package: tests, demo, bench and build, one virtualenv each.

Each per-package session installs only that package, marginkit-shared, the marginkit
packages it declares as dependencies, and their third-party dependencies, so a missing
dependency declaration fails here exactly as it would for a user.

Torch: every session first installs ``$MARGINKIT_TORCH_SPEC`` (default ``torch==2.13.0``,
found as the CPU wheel in ``$PIP_FIND_LINKS`` when that folder has it) before anything that
depends on torch. Set ``MARGINKIT_TORCH_SPEC`` to another requirement (``torch==2.5.1``,
a wheel path) to test against another build, or to ``none`` to keep whatever the resolver
picks.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).parent
nox.options.default_venv_backend = "uv|virtualenv"
nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = False

TORCH_SPEC_ENV_VAR = "MARGINKIT_TORCH_SPEC"
DEFAULT_TORCH_SPEC = "torch==2.13.0"
TEST_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MARGINKIT_NO_PROGRESS": "1"}


@dataclasses.dataclass(frozen=True)
class Package:
    name: str  # folder and session suffix: "tcm", "lvm-smoothing", "shared"
    path: Path
    distribution: str
    internal_dependencies: tuple[str, ...]  # other marginkit distributions it needs
    extras: tuple[str, ...]
    script: str | None  # console script, e.g. "marginkit-tcm"


def _read_package(path: Path) -> Package:
    project = tomllib.loads((path / "pyproject.toml").read_text())["project"]
    requirements = list(project.get("dependencies", []))
    internal = tuple(
        req.split(">")[0].split("<")[0].split("=")[0].split("[")[0].split(";")[0].strip()
        for req in requirements
        if req.startswith("marginkit-")
    )
    scripts = project.get("scripts", {})
    return Package(
        name=path.name,
        path=path,
        distribution=project["name"],
        internal_dependencies=internal,
        extras=tuple(project.get("optional-dependencies", {})),
        script=project["name"] if project["name"] in scripts else None,
    )


def _discover() -> dict[str, Package]:
    folders = [ROOT / "shared"] + sorted(
        child for child in (ROOT / "packages").glob("*") if (child / "pyproject.toml").is_file()
    )
    packages = [_read_package(folder) for folder in folders]
    return {package.name: package for package in packages}


PACKAGES = _discover()
BY_DISTRIBUTION = {package.distribution: package for package in PACKAGES.values()}


def _closure(package: Package) -> list[Package]:
    """The package and every marginkit package it needs, dependencies first."""
    ordered: list[Package] = []

    def visit(current: Package) -> None:
        for distribution in current.internal_dependencies:
            if distribution not in BY_DISTRIBUTION:
                raise RuntimeError(f"{current.distribution} needs unknown {distribution}")
            visit(BY_DISTRIBUTION[distribution])
        if current not in ordered:
            ordered.append(current)

    visit(package)
    return ordered


def install_torch(session: nox.Session) -> None:
    """Install the torch build first so that nothing else resolves a CUDA build here."""
    find_links = os.environ.get("PIP_FIND_LINKS")
    if find_links:
        session.env["UV_FIND_LINKS"] = find_links
    spec = os.environ.get(TORCH_SPEC_ENV_VAR, DEFAULT_TORCH_SPEC)
    if spec.lower() == "none":
        return
    constraints = Path(session.create_tmp()) / "torch-constraint.txt"
    if not spec.endswith(".whl"):
        constraints.write_text(spec + "\n")
        session.env["UV_CONSTRAINT"] = str(constraints)
        session.env["PIP_CONSTRAINT"] = str(constraints)
    session.install(spec)


def install_package(session: nox.Session, package: Package, extras: tuple[str, ...]) -> None:
    """Editable installs of the package and its marginkit dependencies in one resolver call."""
    install_torch(session)
    wanted = ",".join(extra for extra in extras if extra in package.extras)
    args: list[str] = []
    for member in _closure(package):
        target = str(member.path)
        if member is package and wanted:
            target = f"{target}[{wanted}]"
        args += ["-e", target]
    session.install(*args)


def _run_pytest(session: nox.Session, tests: Path) -> None:
    # Exit code 5 ("no tests collected") happens with a -k filter that matches nothing; a
    # package without tests is caught by tests/test_metadata.py instead.
    code = session.run(
        "pytest",
        str(tests),
        "--rootdir",
        str(ROOT),
        "-c",
        str(ROOT / "pyproject.toml"),
        *session.posargs,
        env=TEST_ENV,
        success_codes=[0, 5],
    )
    if code == 5:
        session.warn(f"pytest collected no tests in {tests}")


for _package in PACKAGES.values():

    def _make_sessions(package: Package) -> None:
        @nox.session(name=f"tests-{package.name}")
        def tests(session: nox.Session) -> None:
            install_package(session, package, ("test",))
            _run_pytest(session, package.path / "tests")

        @nox.session(name=f"demo-{package.name}")
        def demo(session: nox.Session) -> None:
            install_package(session, package, ("demo",))
            if package.script is None:
                session.run("python", "-m", "marginkit.shared", env=TEST_ENV)
            else:
                session.run(package.script, "demo", *session.posargs, env=TEST_ENV)

        @nox.session(name=f"bench-{package.name}")
        def bench(session: nox.Session) -> None:
            install_package(session, package, ("test", "bench"))
            session.run("python", str(package.path / "benchmarks" / "run.py"), *session.posargs)

        @nox.session(name=f"build-{package.name}", venv_backend="none")
        def build(session: nox.Session) -> None:
            out_dir = ROOT / "dist" / package.name
            session.run(
                sys.executable,
                "-m",
                "uv",
                "build",
                "--sdist",
                "--wheel",
                "--out-dir",
                str(out_dir),
                str(package.path),
            )

    _make_sessions(_package)


@nox.session(name="tests-monorepo")
def tests_monorepo(session: nox.Session) -> None:
    """Cross-package checks: metadata, declared imports, installing one method alone."""
    session.install("pytest>=8", "uv", "packaging>=23")
    _run_pytest(session, ROOT / "tests")


def _notify_all(session: nox.Session, kind: str) -> None:
    for package in PACKAGES.values():
        session.notify(f"{kind}-{package.name}", posargs=session.posargs)


@nox.session(venv_backend="none")
def tests(session: nox.Session) -> None:
    """Every package's tests, then the cross-package tests and the lint check."""
    _notify_all(session, "tests")
    session.notify("tests-monorepo")
    session.notify("lint")


@nox.session(venv_backend="none")
def demo(session: nox.Session) -> None:
    """Every implemented method's demo on its embedded data."""
    _notify_all(session, "demo")


@nox.session(venv_backend="none")
def bench(session: nox.Session) -> None:
    """Every package's benchmarks."""
    _notify_all(session, "bench")


@nox.session(venv_backend="none")
def build(session: nox.Session) -> None:
    """An sdist and a wheel of every package, each under dist/<name>/."""
    _notify_all(session, "build")


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff==0.17.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy over every package's public modules (third-party stubs missing are Any)."""
    install_torch(session)
    session.install("mypy==2.4.1", "numpy", "-e", str(ROOT / "shared"))
    session.env["MYPYPATH"] = os.pathsep.join(
        str(package.path / "src") for package in PACKAGES.values()
    )
    modules = []
    for package in PACKAGES.values():
        modules += ["-p", "marginkit." + package.name.replace("-", "_")]
    session.run("mypy", *modules)
