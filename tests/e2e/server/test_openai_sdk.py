"""The `openai` SDK, sync and async, streaming and not, against `semantic-reuse serve`:
repeats and paraphrases come back reused (header and `model_extra`), another tenant's key
gets nothing, `no-cache` generates afresh and stores, a reused answer streams in chunks."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.e2e.server.conftest import KEYS, MODEL, Served

ASKED = "How do I reset my password?"
PARAPHRASE = "How can I reset my password?"
PARAMS: dict[str, Any] = {"model": MODEL, "max_tokens": 24, "temperature": 0}


def _chat(client: openai.OpenAI, text: str, headers: dict[str, str]) -> tuple[str, Any]:
    raw = client.chat.completions.with_raw_response.create(
        messages=[{"role": "user", "content": text}], extra_headers=headers, **PARAMS
    )
    response = raw.parse()
    extra = response.model_extra or {}
    assert extra["semantic_reuse"]["kind"] == raw.headers["x-semantic-reuse"]
    return raw.headers["x-semantic-reuse"], response


def test_sync_repeat_paraphrase_tenant_and_no_cache(served: Served, space: dict[str, str]) -> None:
    acme = openai.OpenAI(base_url=served.base_url, api_key=KEYS["acme"])
    beta = openai.OpenAI(base_url=served.base_url, api_key=KEYS["beta"])
    kind, first = _chat(acme, ASKED, space)
    assert kind == "miss"
    text = first.choices[0].message.content
    kind, again = _chat(acme, ASKED, space)
    assert kind == "exact"
    assert again.choices[0].message.content == text
    assert again.usage.completion_tokens == first.usage.completion_tokens
    kind, paraphrase = _chat(acme, PARAPHRASE, space)
    assert kind == "semantic"
    assert paraphrase.model_extra["semantic_reuse"]["similarity"] > 0.8
    assert paraphrase.choices[0].message.content == text
    kind, _ = _chat(beta, ASKED, space)  # same header, other tenant: another namespace
    assert kind == "miss"
    kind, fresh = _chat(acme, ASKED, {**space, "Cache-Control": "no-cache"})
    assert kind == "miss"
    assert fresh.model_extra["semantic_reuse"]["refused_by"] == "no-cache"
    assert _chat(acme, ASKED, space)[0] == "exact"  # the fresh answer was stored


async def test_async_streaming_reuse_streams_in_chunks(
    served: Served, space: dict[str, str]
) -> None:
    client = openai.AsyncOpenAI(base_url=served.base_url, api_key=KEYS["acme"])

    async def ask(text: str, headers: dict[str, str]) -> tuple[str, list[Any]]:
        raw = await client.chat.completions.with_raw_response.create(
            messages=[{"role": "user", "content": text}], stream=True,
            stream_options={"include_usage": True}, extra_headers=headers, **PARAMS,
        )  # fmt: skip
        chunks = [chunk async for chunk in raw.parse()]
        return raw.headers["x-semantic-reuse"], chunks

    kind, generated = await ask("Name three colours of the rainbow.", space)
    assert kind == "miss"
    kind, reused = await ask("Name three colours of the rainbow.", space)
    assert kind == "exact"
    assert reused[0].model_extra["semantic_reuse"]["kind"] == "exact"
    text = [c.choices[0].delta.content or "" for c in reused if c.choices]
    assert "".join(text) == "".join(c.choices[0].delta.content or ""
                                    for c in generated if c.choices)  # fmt: skip
    assert sum(1 for t in text if t) > 2  # in chunks, like a generated answer
    assert [c.choices[0].finish_reason for c in reused if c.choices][-1] in ("stop", "length")
    assert reused[-1].choices == []
    assert reused[-1].usage.completion_tokens == generated[-1].usage.completion_tokens
    no_store = {**space, "Cache-Control": "no-store"}
    kind, _ = await ask("Name three colours of the rainbow.", no_store)
    assert kind == "exact"  # no-store still reads
    await client.close()


def test_completions_endpoint_reuses(served: Served, space: dict[str, str]) -> None:
    client = openai.OpenAI(base_url=served.base_url, api_key=KEYS["acme"])
    kinds = []
    for _ in range(2):
        raw = client.completions.with_raw_response.create(
            prompt="Once upon a time", extra_headers=space, **PARAMS
        )
        kinds.append(raw.headers["x-semantic-reuse"])
        assert raw.parse().model_extra["semantic_reuse"]["kind"] == kinds[-1]
    assert kinds == ["miss", "exact"]


# A paraphrase the bundled verifier scores ~0.75: served at the default budget (0.2), refused
# at 0.05 (tests/integration/semantic/test_verifier.py).
STORED, BORDERLINE = "Which city is the capital of France?", "What is the capital of France?"
BUDGET = "x-semantic-reuse-max-error-rate"


def test_error_budget_header_moves_the_verifier_bar(served: Served, space: dict[str, str]) -> None:
    client = openai.OpenAI(base_url=served.base_url, api_key=KEYS["acme"])
    namespace = space["x-semantic-reuse-namespace"]
    tight = {"x-semantic-reuse-namespace": namespace + ".tight"}
    loose = {"x-semantic-reuse-namespace": namespace + ".default"}
    for space in (tight, loose):
        assert _chat(client, STORED, space)[0] == "miss"
    kind, refused = _chat(client, BORDERLINE, {**tight, BUDGET: "0.05"})
    assert kind == "miss"
    info = refused.model_extra["semantic_reuse"]
    assert info["refused_by"] == "unverified"
    assert 0.5 < info["probability"] < 0.9
    kind, _ = _chat(client, BORDERLINE, loose)
    assert kind == "semantic"

    for headers in ({BUDGET: "0"}, {BUDGET: "1.5"}, {BUDGET: "strict"},
                    {BUDGET: "0.1", "x-semantic-reuse-threshold": "0.9"}):  # fmt: skip
        with pytest.raises(openai.BadRequestError) as refused_header:
            _chat(client, BORDERLINE, {**loose, **headers})
        assert refused_header.value.status_code == 400
        assert refused_header.value.param == BUDGET
