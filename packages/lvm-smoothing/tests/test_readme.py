"""The README's quick start runs as written."""

import re
from pathlib import Path


def test_readme_quick_start_runs(capsys):
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    code = re.search(r"## Quick start\n\n```python\n(.*?)```", readme, re.S).group(1)
    exec(compile(code, "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0].startswith("0 ")  # class 0 certified: x[0] = 0.9 > 0
    radius = float(printed[0].split()[1])
    assert 0 < radius <= 0.9  # the exact distance to the boundary x[0] = 0
    assert printed[2] == "predict 0"
