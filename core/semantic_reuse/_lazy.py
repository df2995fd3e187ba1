"""Module attributes loaded on first use (PEP 562), for the public API and the spi."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence


def lazy_exports(
    module: str, table: Mapping[str, str], names: Sequence[str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `module`: each name of `table` is imported from the
    module `table` names, when first asked for."""

    def __getattr__(name: str) -> object:
        source = table.get(name)
        if source is None:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        return getattr(importlib.import_module(source), name)

    def __dir__() -> list[str]:
        own = vars(sys.modules[module])
        return sorted({*names, *(name for name in own if name.startswith("__"))})

    return __getattr__, __dir__
