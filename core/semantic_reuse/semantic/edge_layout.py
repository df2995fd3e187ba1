"""How a Qdrant Edge folder is laid out, and opening one: load it, or create it so laid out.

Memory layout (:func:`new_folder_config`, fixed when a folder is created): the optimized (HNSW)
segments keep a scalar int8 copy of every vector in RAM (384 bytes for 384 dimensions, against
1,536 for float32) and the original float32 vectors in a memory-mapped file that is not preloaded
(``Memory.Cold``); payloads are on disk. A search walks the index on the int8 copies, takes
``RESCORE_OVERSAMPLING`` times the requested candidates and rescores them with the originals
(:func:`search_params`), so the scores returned are exact cosines, as without quantization. Points
not yet optimized (the appendable segment) are searched exactly, without quantization. A folder
created before this layout keeps the one it was created with (its ``edge_config.json`` is left as
it is).

The shard holds one unnamed cosine vector, with payload indexes on the scope and the tags
(keyword) and the clock (float); :func:`open_shard` adds those a folder lacks.
``qdrant_edge`` is imported by the functions, not by this module.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from semantic_reuse.errors import (
    ComponentUnavailableError,
    ConfigurationError,
    StoreInUseError,
)
from semantic_reuse.semantic.store_payload import F_TAGS, FLOAT_FIELDS, KEYWORD_FIELDS

if TYPE_CHECKING:
    from qdrant_edge import EdgeConfig, EdgeShard, SearchParams

__all__ = ["FOLDER_LAYOUT", "new_folder_config", "open_shard", "search_params"]

#: Names the layout of :func:`new_folder_config` (the benches key their prebuilt folders on it).
FOLDER_LAYOUT = "int8-ram.f32-cold"
#: The quantile of the values that bounds the int8 range (the extreme 1% are clipped).
QUANTIZATION_QUANTILE = 0.99
#: A quantized search rescores this many times the requested candidates with the originals.
RESCORE_OVERSAMPLING = 2.0


def new_folder_config(dim: int) -> EdgeConfig:
    """The configuration of a new folder: int8 copies in RAM, originals and payloads on disk."""
    from qdrant_edge import (
        Distance,
        EdgeConfig,
        EdgeVectorParams,
        Memory,
        ScalarQuantizationConfig,
        ScalarType,
    )

    return EdgeConfig(
        vectors=EdgeVectorParams(
            size=dim,
            distance=Distance.Cosine,
            memory=Memory.Cold,
            quantization_config=ScalarQuantizationConfig(
                ScalarType.Int8, quantile=QUANTIZATION_QUANTILE, memory=Memory.Pinned
            ),
        ),
        payload_memory=Memory.Cold,
    )


def _plain_config(dim: int) -> EdgeConfig:
    """The vector parameters alone (what folders were created with before quantization)."""
    from qdrant_edge import Distance, EdgeConfig, EdgeVectorParams

    return EdgeConfig(vectors=EdgeVectorParams(size=dim, distance=Distance.Cosine))


def _existing_dim(folder: Path) -> int | None:
    """The vector size recorded in an Edge folder's ``edge_config.json``, when readable."""
    try:
        config = json.loads((folder / "edge_config.json").read_text(encoding="utf-8"))
        return int(config["vectors"][""]["size"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _has_shard(folder: Path) -> bool:
    return (folder / "edge_config.json").exists() or (folder / "segments").is_dir()


def open_shard(folder: Path, dim: int, template: Path | None = None) -> EdgeShard:
    """Load the shard of ``folder``, or create it (laid out as the shard in ``template`` when
    given, else as :func:`new_folder_config`); add the payload indexes it lacks.

    ValueError when the folder holds vectors of another ``dim``; StoreInUseError when another
    process has the folder open."""
    from qdrant_edge import EdgeShard, PayloadSchemaType, UpdateOperation

    where = str(folder)
    if _has_shard(folder):
        existing = _existing_dim(folder)
        if existing is not None and existing != dim:
            raise ConfigurationError(
                f"dim={dim} does not match the Edge store at {where}, "
                f"which holds {existing}-dimensional vectors"
            )
        # Loading with a config overwrites the folder's vector parameters (quantization
        # and memory placement included), so a folder whose own config is readable (and
        # checked above) is loaded as it is; an older folder without one is checked
        # against its segments with the plain vector parameters, as it was created.
        config = None if existing is not None else _plain_config(dim)
        try:
            shard = EdgeShard.load(where, config)
        except Exception as exc:
            if "ncompatible" in str(exc):
                raise ConfigurationError(
                    f"dim={dim} (cosine) does not match the Edge store at {where}: {exc}"
                ) from exc
            if "WouldBlock" in str(exc):
                raise StoreInUseError(
                    f"the Edge store at {where} is open in another process"
                ) from exc
            raise ComponentUnavailableError(
                f"cannot open the Edge store at {where}: {exc}"
            ) from exc
    elif template is not None and (template / "edge_config.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template / "edge_config.json", folder / "edge_config.json")
        shard = EdgeShard.load(where)  # an empty shard laid out as the template
    elif template is not None:
        shard = EdgeShard.create(where, _plain_config(dim))
    else:
        shard = EdgeShard.create(where, new_folder_config(dim))
    try:
        indexed = shard.info().payload_schema
        for name in (*KEYWORD_FIELDS, F_TAGS):
            if name not in indexed:
                shard.update(UpdateOperation.create_field_index(name, PayloadSchemaType.Keyword))
        for name in FLOAT_FIELDS:
            if name not in indexed:
                shard.update(UpdateOperation.create_field_index(name, PayloadSchemaType.Float))
    except BaseException:
        shard.close()
        raise
    return shard


def search_params(hnsw_ef: int | None) -> SearchParams:
    """``hnsw_ef``, and rescoring with the originals where a segment is quantized (ignored
    where it is not): the scores are exact cosines either way."""
    from qdrant_edge import QuantizationSearchParams, SearchParams

    return SearchParams(
        hnsw_ef=hnsw_ef,
        quantization=QuantizationSearchParams(rescore=True, oversampling=RESCORE_OVERSAMPLING),
    )
