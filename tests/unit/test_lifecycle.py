"""The lifecycle rules alone: what a namespace's record admits, what a request stamps, when a
sliding answer is renewed, and the options and codec that carry them."""

from __future__ import annotations

import pytest

from semantic_reuse import CachedAnswer, ReuseOptions
from semantic_reuse.answer import AnswerCodec
from semantic_reuse.lifecycle import NamespaceState, StorePolicy, joined, renewal
from semantic_reuse.options import MAX_TAGS

NOW = 1_800_000_000.0


def answer(**fields: object) -> CachedAnswer:
    return CachedAnswer("text", created_at=fields.pop("created_at", NOW - 100), **fields)  # type: ignore[arg-type]


def test_the_record_admits_live_current_answers_only() -> None:
    state = NamespaceState(
        epoch=2, not_before=NOW - 50, retired={"tag:doc-1": NOW - 10, "id:k1": NOW - 10}
    )
    assert state.refusal(answer(epoch=2, created_at=NOW - 20), "k0", NOW) is None
    assert state.refusal(answer(epoch=1, created_at=NOW - 20), "k0", NOW) == "epoch"
    assert state.refusal(answer(epoch=3, created_at=NOW - 20), "k0", NOW) == "epoch"
    assert state.refusal(answer(epoch=2, created_at=NOW - 60), "k0", NOW) == "age"
    tagged = answer(epoch=2, created_at=NOW - 20, tags=("doc-1", "doc-2"))
    assert state.refusal(tagged, "k0", NOW) == "tag"
    assert state.refusal(answer(epoch=2, created_at=NOW - 20), "k1", NOW) == "id"
    assert state.refusal(answer(epoch=2, created_at=NOW - 20), None, NOW) is None
    # made after the retirement: the tag or id was reused for a new answer
    assert state.admits(answer(epoch=2, created_at=NOW - 5, tags=("doc-1",)), "k1", NOW)
    expired = answer(epoch=2, created_at=NOW - 20, expires_at=NOW)
    assert state.refusal(expired, "k0", NOW) == "expired"
    assert state.admits(expired, "k0", NOW - 1)


def test_stamp_sets_the_requests_lifecycle() -> None:
    policy = StorePolicy(epoch=3, ttl_s=60, sliding=True, tags=("b", "a"), started_at=NOW - 7)
    generated = policy.stamp(CachedAnswer("x", created_at=NOW - 1), NOW)
    assert (generated.epoch, generated.tags, generated.created_at) == (3, ("a", "b"), NOW - 7)
    assert (generated.expires_at, generated.ttl_s, generated.sliding) == (NOW + 60, 60.0, True)
    # An answer served from another keeps its own age, tags and an earlier expiry.
    served = CachedAnswer("y", created_at=NOW - 500, tags=("c",), expires_at=NOW + 10)
    copy = policy.stamp(served, NOW)
    assert (copy.created_at, copy.tags, copy.expires_at) == (NOW - 500, ("a", "b", "c"), NOW + 10)
    plain = StorePolicy().stamp(served, NOW)
    assert plain is served  # nothing to change: the same object


def test_renewal_only_for_sliding_answers_once_due() -> None:
    fresh = answer(ttl_s=100.0, sliding=True, expires_at=NOW + 95)
    assert renewal(fresh, NOW) is None  # 5 % of the window used
    due = answer(ttl_s=100.0, sliding=True, expires_at=NOW + 89)
    renewed = renewal(due, NOW)
    assert renewed is not None
    assert renewed.expires_at == NOW + 100
    assert renewal(answer(ttl_s=100.0, expires_at=NOW + 1), NOW) is None  # absolute


def test_a_composed_answer_joins_its_parts_lifecycles() -> None:
    parts = [
        answer(tags=("a",), created_at=NOW - 5, expires_at=NOW + 50, epoch=1),
        answer(tags=("b",), created_at=NOW - 9, epoch=1),
    ]
    whole = joined(CachedAnswer("a and b"), parts)
    assert (whole.tags, whole.created_at, whole.expires_at, whole.epoch) == (
        ("a", "b"), NOW - 9, NOW + 50, 1,
    )  # fmt: skip
    assert not whole.sliding


def test_options_check_ttl_sliding_and_tags() -> None:
    options = ReuseOptions(ttl_s=30, sliding=True, tags=["doc-2", "doc-1", "doc-2"])
    assert (options.ttl_s, options.sliding, options.tags) == (30.0, True, ("doc-1", "doc-2"))
    for bad, error in [
        ({"ttl_s": 0}, ValueError),
        ({"ttl_s": float("inf")}, ValueError),
        ({"ttl_s": True}, TypeError),
        ({"sliding": 1}, TypeError),
        ({"tags": "doc-1"}, TypeError),
        ({"tags": [1]}, TypeError),
        ({"tags": ["x" * 300]}, ValueError),
        ({"tags": ["a\nb"]}, ValueError),
        ({"tags": [str(i) for i in range(MAX_TAGS + 1)]}, ValueError),
    ]:
        name = next(iter(bad))
        with pytest.raises(error, match=name):
            ReuseOptions(**bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="unexpected"):
        ReuseOptions.of(ttl=3)


@pytest.mark.parametrize("fmt", ["msgpack", "json"])
def test_the_codec_keeps_the_lifecycle(fmt: str) -> None:
    codec = AnswerCodec(fmt)  # type: ignore[arg-type]
    full = answer(tags=("doc-1",), epoch=4, expires_at=NOW + 5, ttl_s=5.0, sliding=True)
    assert codec.decode(codec.encode(full)) == full
    plain = CachedAnswer("text", created_at=NOW)
    assert "tags" not in plain.to_dict()  # an answer without them encodes as before
    assert codec.decode(codec.encode(plain)) == plain
