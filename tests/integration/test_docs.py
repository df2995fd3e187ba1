"""The docs must match the code: every setting documented, the README example runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel

from semantic_reuse import HandlerConfig
from tests import REPO_ROOT

ROOT = REPO_ROOT


def _settings(model: type[BaseModel], prefix: str = "") -> list[str]:
    names = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += _settings(annotation, f"{prefix}{name}.")
        else:
            names.append(prefix + name)
    return names


def test_every_setting_is_documented_with_its_default_and_variable() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `([a-z0-9_.]+)` \|", text, flags=re.M))
    settings = set(_settings(HandlerConfig))
    assert documented == settings
    for setting in settings:
        variable = "SEMANTIC_REUSE_" + setting.upper().replace(".", "__")
        assert f"`{variable}`" in text, variable
    defaults = HandlerConfig()
    for line in text.splitlines():
        if m := re.match(r"^\| `([a-z0-9_.]+)` \| `([^`]+)`", line):
            value: object = defaults
            for part in m.group(1).split("."):
                value = getattr(value, part)
            assert repr(value).replace("'", '"') == m.group(2), m.group(1)


def test_readme_example_runs(tmp_path: Path) -> None:
    """The example prints what its comment says, and a second run finds the answers stored
    by the first in the Qdrant Edge folder."""
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, flags=re.S)
    assert code is not None
    env = {**os.environ, "SEMANTIC_REUSE_CACHE__QDRANT_PATH": str(tmp_path / "qdrant")}
    runs = [
        subprocess.run(
            [sys.executable, "-c", code.group(1)], capture_output=True, text=True, env=env
        )
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert runs[0].stdout.splitlines() == ["miss []", "semantic []", "partial ['exact', 'miss']"]
    assert "# miss [] / semantic [] / partial ['exact', 'miss']" in code.group(1)
    assert runs[1].stdout.splitlines() == ["exact []", "semantic []", "exact []"]
