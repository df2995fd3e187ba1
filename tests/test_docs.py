"""The docs must match the code: every setting documented, the README example runs."""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
from pathlib import Path

from pydantic import BaseModel

from semantic_reuse import HandlerConfig, RedisTier

ROOT = Path(__file__).resolve().parents[1]


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
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", text, flags=re.M))
    settings = set(_settings(HandlerConfig))
    assert documented == settings
    for setting in settings:
        variable = "SEMANTIC_REUSE_" + setting.upper().replace(".", "__")
        assert f"`{variable}`" in text, variable
    defaults = HandlerConfig()
    for line in text.splitlines():
        if m := re.match(r"^\| `([a-z_.]+)` \| `([^`]+)`", line):
            value: object = defaults
            for part in m.group(1).split("."):
                value = getattr(value, part)
            assert repr(value).replace("'", '"') == m.group(2), m.group(1)


def test_readme_example_runs(redis_url: str) -> None:
    text = (ROOT / "README.md").read_text()
    code = re.search(r"```python\n(.*?)```", text, flags=re.S)
    assert code is not None
    source = code.group(1).replace("redis://127.0.0.1:6379/0", redis_url)
    source = source.replace('namespace="acme"', 'namespace="readme-test"')
    runs = [
        subprocess.run([sys.executable, "-c", source], capture_output=True, text=True)
        for _ in range(2)
    ]
    asyncio.run(RedisTier(redis_url).clear("readme-test"))
    assert [r.returncode for r in runs] == [0, 0], runs[0].stderr + runs[1].stderr
    assert runs[0].stdout == ""  # a miss: the answer is stored
    assert runs[1].stdout == "redis Redis is an in-memory data store.\n"  # another process
