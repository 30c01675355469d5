"""Build the wheels of marginkit-shared and one method, install them alone, import the method.

The method is the lightest one present (tcm when it exists), so the test also shows that the
heavy dependencies of the other methods (diffusers, transformers, POT) are not pulled in.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest
from layout import ROOT, package_folders, project_table

TORCH_SPEC = os.environ.get("MARGINKIT_TORCH_SPEC", "torch==2.13.0")
PREFERRED = ("tcm", "lvm-smoothing", "mam")


def _method():
    present = {folder.name: folder for folder in package_folders()[1:]}
    for name in PREFERRED:
        if name in present:
            return present[name]
    pytest.fail("no method package present under packages/ to install alone")


def _uv(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "uv", *args], check=True, **kwargs)


def test_method_wheel_installs_alone_without_other_methods(tmp_path):
    method = _method()
    _uv("build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(ROOT / "shared"))
    _uv("build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(method))
    wheels = sorted((tmp_path / "dist").glob("*.whl"))
    assert len(wheels) == 2

    method_wheel = next(w for w in wheels if "shared" not in w.name)
    with zipfile.ZipFile(method_wheel) as archive:
        names = archive.namelist()
        metadata = next(n for n in names if n.endswith("METADATA"))
        requires = [
            line.split(":", 1)[1].strip()
            for line in archive.read(metadata).decode().splitlines()
            if line.startswith("Requires-Dist:")
        ]
    assert "marginkit/__init__.py" not in names
    shared_requirement = [r for r in requires if r.startswith("marginkit-shared")]
    assert shared_requirement and "file:" not in shared_requirement[0]
    assert any(c in shared_requirement[0] for c in "<>="), shared_requirement

    venv = tmp_path / "venv"
    _uv("venv", "--quiet", str(venv))
    python = venv / "bin" / "python"
    env = dict(os.environ)
    if os.environ.get("PIP_FIND_LINKS"):
        env["UV_FIND_LINKS"] = os.environ["PIP_FIND_LINKS"]
    _uv("pip", "install", "--quiet", "--python", str(python), TORCH_SPEC, env=env)
    _uv("pip", "install", "--quiet", "--python", str(python), *map(str, wheels), env=env)

    import_name = method.name.replace("-", "_")
    others = [f.name.replace("-", "_") for f in package_folders()[1:] if f != method]
    heavy = ["diffusers", "transformers", "trl", "peft", "ot"]
    heavy = [name for name in heavy if not _declares(method, name)]
    probe = (
        "import importlib.util, json, marginkit\n"
        f"import marginkit.{import_name}\n"
        f"others = {others!r}\n"
        f"heavy = {heavy!r}\n"
        "print(json.dumps({\n"
        "  'methods': [m for m in others if importlib.util.find_spec('marginkit.' + m)],\n"
        "  'heavy': [h for h in heavy if importlib.util.find_spec(h)],\n"
        "  'namespace_paths': len(list(marginkit.__path__)),\n"
        "}))\n"
    )
    result = subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True)
    report = __import__("json").loads(result.stdout.strip().splitlines()[-1])
    assert report == {"methods": [], "heavy": [], "namespace_paths": 1}


def _declares(folder, module):
    distribution = {"ot": "pot"}.get(module, module)
    project = project_table(folder)["project"]
    return any(req.lower().startswith(distribution) for req in project.get("dependencies", []))
