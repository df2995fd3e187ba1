"""Word pairs around an asymmetric marker ("A to B", "A than B", 从A到B, A比B), shared by
the English and the Chinese analysis: the words on each side of the marker, and the
(relation, first, second) triples they give."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

Relation = tuple[str, str, str]
"""(relation, first, second): ``path`` (source, destination) or ``compare``."""

RUN = 3
"""The most content words taken on each side of a marker."""


def side(
    items: Sequence[tuple[str, str]],
    i: int,
    step: int,
    *,
    skip_stopwords: bool,
    boundary: Callable[[str, str], bool],
    content: Callable[[str], str | None],
) -> list[str]:
    """The contiguous run of content words touching the marker at ``i``, walking by
    ``step`` (-1: left, +1: right) over ``(kind, word)`` items. The run stops at a
    ``boundary`` item, and at a stopword (``content`` returns ``None``; it returns the
    form to keep otherwise) unless ``skip_stopwords`` and no content word was seen yet
    (the articles after the marker)."""
    out: list[str] = []
    j = i + step
    while 0 <= j < len(items) and len(out) < RUN:
        kind, word = items[j]
        if boundary(kind, word):
            break
        kept = content(word)
        if kept is None:
            if out or not skip_stopwords:
                break
        else:
            out.append(kept)
        j += step
    return out


def relations(
    marker: str,
    left: list[str],
    right: list[str],
    markers: Mapping[str, tuple[str, bool]],
) -> set[Relation]:
    """The triples that ``marker`` states between the words on its two sides: its relation
    in ``markers`` (``path`` when absent), with the sides swapped where the marker puts
    the first one on its right ("B from A")."""
    rel, flip = markers.get(marker, ("path", False))
    if flip:
        left, right = right, left
    return {(rel, x, y) for x in left for y in right}
