"""The library's logger: loguru's, silent for ``semantic_reuse`` until the application enables it.

Loguru's convention for libraries is ``logger.disable("semantic_reuse")`` at import. Importing
loguru costs more than the rest of ``import semantic_reuse`` (it loads asyncio and
multiprocessing), so it happens when the first module that logs is imported, and the
application's own choice wins: a ``logger.enable(...)`` or ``logger.disable(...)`` of
``semantic_reuse`` made before then is left alone.
"""

from __future__ import annotations

from loguru import logger

__all__ = ["logger"]

_NAME = "semantic_reuse"


def _application_decided(name: str) -> bool:
    """Whether `logger.enable(name)` / `logger.disable(name)` was called already."""
    core = getattr(logger, "_core", None)
    activations = getattr(core, "activation_list", ())
    return any(entry == f"{name}." for entry, _ in activations)


if not _application_decided(_NAME):
    logger.disable(_NAME)
