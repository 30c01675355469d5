"""Every package folder follows the layout that lets it be installed, tested and released alone."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from layout import ROOT, package_folders, project_table, requirement_name
from packaging.requirements import Requirement
from packaging.version import Version

FOLDERS = package_folders()
IDS = [folder.name for folder in FOLDERS]


def _import_name(folder):
    return "shared" if folder.name == "shared" else folder.name.replace("-", "_")


@pytest.mark.parametrize("folder", FOLDERS, ids=IDS)
def test_package_metadata_is_pep621_built_by_poetry_core(folder):
    table = project_table(folder)
    project = table["project"]
    assert project["name"] == f"marginkit-{folder.name}"
    Version(project["version"])  # raises on a non-PEP 440 version
    assert project["readme"] == "README.md"
    assert table["build-system"]["build-backend"] == "poetry.core.masonry.api"
    assert any(req.startswith("poetry-core") for req in table["build-system"]["requires"])
    include = table["tool"]["poetry"]["packages"]
    assert include == [{"include": f"marginkit/{_import_name(folder)}", "from": "src"}]


@pytest.mark.parametrize("folder", FOLDERS, ids=IDS)
def test_package_folder_has_readme_changelog_tests_and_typed_namespace_module(folder):
    source = folder / "src" / "marginkit"
    assert not (source / "__init__.py").exists(), "marginkit must stay a PEP 420 namespace"
    module = source / _import_name(folder)
    assert (module / "__init__.py").is_file()
    assert (module / "py.typed").is_file()
    assert list((folder / "tests").glob("test_*.py")), "a package needs tests"
    assert (folder / "benchmarks" / "run.py").is_file()
    readme = (folder / "README.md").read_text()
    for heading in ("## Install", "## Quick start", "## API", "## Known limitations"):
        assert heading in readme, f"{folder.name}/README.md lacks {heading!r}"
    version = project_table(folder)["project"]["version"]
    changelog = (folder / "CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(version)}\b", changelog, re.MULTILINE), (
        f"{folder.name}/CHANGELOG.md has no entry for version {version}"
    )


@pytest.mark.parametrize("folder", FOLDERS, ids=IDS)
def test_internal_dependencies_are_version_ranges_not_paths(folder):
    for text in project_table(folder)["project"].get("dependencies", []):
        requirement = Requirement(text)
        if requirement.name.startswith("marginkit-"):
            assert requirement.url is None, f"{text!r} must not point at a path or URL"
            assert requirement.specifier, f"{text!r} needs a version range"
            assert "file:" not in text and "../" not in text


def _marginkit_imports(source_root):
    found = {}
    for path in source_root.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                if parts[0] == "marginkit" and len(parts) > 1:
                    found.setdefault(parts[1], path)
    return found


@pytest.mark.parametrize("folder", FOLDERS, ids=IDS)
def test_every_marginkit_import_is_a_declared_dependency(folder):
    project = project_table(folder)["project"]
    declared = {requirement_name(req) for req in project.get("dependencies", [])}
    for extra in project.get("optional-dependencies", {}).values():
        declared |= {requirement_name(req) for req in extra}
    own = _import_name(folder)
    for module, path in _marginkit_imports(folder / "src").items():
        if module == own:
            continue
        distribution = f"marginkit-{module.replace('_', '-')}"
        assert distribution in declared, (
            f"{path.relative_to(ROOT)} imports marginkit.{module} but {folder.name}/pyproject.toml "
            f"does not declare {distribution}"
        )


def test_every_method_has_a_guide_in_docs():
    for folder in FOLDERS[1:]:
        assert (ROOT / "docs" / "methods" / f"{folder.name}.md").is_file()


@pytest.mark.parametrize("folder", FOLDERS[1:], ids=IDS[1:])
def test_console_script_entry_returns_none_so_the_exit_status_is_zero(folder):
    # The generated script runs sys.exit(main()): any returned object other than None
    # or 0 is printed and becomes exit status 1, even after a successful command.
    project = project_table(folder)["project"]
    target = project["scripts"][project["name"]]
    module, function = target.split(":")
    path = folder / "src" / Path(*module.split(".")).with_suffix(".py")
    tree = ast.parse(path.read_text())
    entry = next(
        node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name == function
    )
    assert isinstance(entry.returns, ast.Constant) and entry.returns.value is None, (
        f"{path.relative_to(ROOT)}:{entry.lineno} {function}() must be annotated -> None"
    )
    returns = [n for n in ast.walk(entry) if isinstance(n, ast.Return) and n.value is not None]
    assert not returns, f"{path.relative_to(ROOT)}: {function}() returns a value"
