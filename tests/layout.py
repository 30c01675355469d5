"""Helpers shared by the cross-package tests: where the packages are and what they declare."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def package_folders() -> list[Path]:
    return [ROOT / "shared"] + sorted(
        path.parent for path in (ROOT / "packages").glob("*/pyproject.toml")
    )


def project_table(folder: Path) -> dict:
    return tomllib.loads((folder / "pyproject.toml").read_text())


def requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0].lower()
