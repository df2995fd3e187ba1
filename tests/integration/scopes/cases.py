"""Generated scopes for the isolation properties: cases, how answers are tagged, the tally.

A case is one request: a namespace, a model, a conversation (the messages before the last
user message; None for a plain text prompt) and a prompt. Its *scope* is everything but the
prompt: within one scope a paraphrase may legitimately be served another prompt's answer;
across scopes nothing may ever be served. Every stored or generated answer carries a tag that
names the entry (scope and prompt) it was made for, so any answer that comes back can be
traced to its origin, leftovers of earlier examples included.

Hypothesis draws small pools (1-3 namespaces, models and conversations, 1-4 prompts, with
near-identical values: case, a trailing space, a combining accent) and builds a batch of cases
from them, so that the same prompt text recurs across scopes: the strongest test of isolation
(similarity 1.0 in the vector store, the same text in single-flight).

`SEMANTIC_REUSE_PROPERTY_EXAMPLES` sets the total number of generated cases across all the
paths (default 400, a quick run; 10000 for the full property run), shared out by `examples`.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import unicodedata
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from semantic_reuse import CachedAnswer, ReuseRequest

History: TypeAlias = tuple[tuple[str, str], ...] | None
Scope: TypeAlias = tuple[str, str, History]
Entry: TypeAlias = tuple[str, str, History, str]

TOTAL_CASES = int(os.environ.get("SEMANTIC_REUSE_PROPERTY_EXAMPLES", "400"))
#: Share of the total per path (they sum to 1).
WEIGHTS = {
    "exact tiers": 0.25,
    "vector store": 0.25,
    "clauses": 0.1,
    "single-flight": 0.1,
    "langchain cache": 0.1,
    "langchain chat model": 0.1,
    "llamaindex llm": 0.1,
}
#: path -> Counter(probes, exposed, leaks, hits, semantic hits, ...), reported at the end.
TALLY: dict[str, Counter[str]] = {}
#: tag -> the entry it was made for (every tag any test made in this process).
ENTRIES: dict[str, Entry] = {}
TAG = re.compile(r"«(sr[0-9a-f]{16})»")


def examples(path: str, per_example: int) -> settings:
    """Hypothesis settings giving `path` its share of `TOTAL_CASES` (`per_example` probes
    an example)."""
    count = max(2, math.ceil(TOTAL_CASES * WEIGHTS[path] / per_example))
    return settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,  # one engine serves every example
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
        ],
    )


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


@dataclass(frozen=True)
class Case:
    namespace: str
    model: str
    history: History
    prompt: str

    @property
    def chat(self) -> list[dict[str, str]] | None:
        if self.history is None:
            return None
        turns = [{"role": role, "content": content} for role, content in self.history]
        return [*turns, {"role": "user", "content": self.prompt}]

    @property
    def prompt_input(self) -> str | list[dict[str, str]]:
        chat = self.chat
        return self.prompt if chat is None else chat

    def as_chat(self) -> Case:
        """The case as a chat API sends it (a plain prompt becomes one user message)."""
        return (
            self if self.history is not None else Case(self.namespace, self.model, (), self.prompt)
        )

    @property
    def scope(self) -> Scope:
        history = None
        if self.history is not None:
            history = tuple((nfc(role), nfc(content)) for role, content in self.history)
        return (self.namespace, nfc(self.model), history)

    @property
    def entry(self) -> Entry:
        text = nfc(self.prompt)  # a chat's messages are keyed as given, a prompt trimmed
        return (*self.scope, text.strip() if self.history is None else text)

    def request(self) -> ReuseRequest:
        chat = self.chat
        if chat is None:
            return ReuseRequest(self.prompt, namespace=self.namespace, model=self.model)
        return ReuseRequest(messages=chat, namespace=self.namespace, model=self.model)


def tag_of(entry: Entry) -> str:
    tag = "sr" + hashlib.sha256(repr(entry).encode("utf-8", "surrogatepass")).hexdigest()[:16]
    ENTRIES[tag] = entry
    return tag


def answer_text(entry: Entry) -> str:
    return f"the answer for «{tag_of(entry)}»"


def answer_for(case: Case) -> CachedAnswer:
    return CachedAnswer(answer_text(case.entry))


def origins(text: str) -> list[Entry]:
    """The entries the tags in an answer's text were made for (a composed answer has one
    per clause)."""
    found = [ENTRIES[tag] for tag in TAG.findall(text)]
    assert found, f"an answer without a tag: {text!r}"
    return found


def entry_of_request(request: ReuseRequest) -> Entry:
    """The entry a backend is asked to generate for, read from the request it receives."""
    model = nfc(request.model or "")
    if request.prompt is not None:
        return (request.namespace, model, None, nfc(request.prompt).strip())
    messages = list(request.messages or ())
    history = tuple((nfc(str(m["role"])), nfc(str(m["content"]))) for m in messages[:-1])
    return (request.namespace, model, history, nfc(str(messages[-1]["content"])))


def tally(path: str, **counts: int) -> None:
    TALLY.setdefault(path, Counter()).update(counts)


def check_served(path: str, probe: Case, text: str | None, stored: Sequence[Case]) -> None:
    """Count one probe and fail on a leak: an answer made for another scope."""
    exposed = any(s.scope != probe.scope for s in stored)
    tally(path, probes=1, exposed=int(exposed), hits=int(text is not None))
    if text is None:
        return
    for origin in origins(text):
        if origin[:3] != probe.scope:
            tally(path, leaks=1)
            raise AssertionError(
                f"{path}: a request in scope {probe.scope!r} was served the answer made for "
                f"{origin!r}"
            )


class ScopedBackend:
    """The model the tests control: it answers every request with the tag of the entry it
    was asked for, so a wrongly shared generation names its origin. `calls` counts the
    generations; with `gate` set, each waits for it."""

    model_name = None

    def __init__(self) -> None:
        self.calls = 0
        self.gate: Any = None  # an asyncio.Event to wait for, or None
        self.started: Any = None  # (asyncio.Event, count): set when `calls` reaches count

    async def stream(self, request: ReuseRequest) -> AsyncIterator[str | CachedAnswer]:
        self.calls += 1
        if self.started is not None and self.calls >= self.started[1]:
            self.started[0].set()
        if self.gate is not None:
            await self.gate.wait()
        text = answer_text(entry_of_request(request))
        yield text
        yield CachedAnswer(text, finish_reason="stop", source_prompt=request.semantic_text)


# -- strategies ------------------------------------------------------------------------------

NAMESPACES = st.one_of(
    st.sampled_from(["a", "A", "a.b", "a-b", "ab", "tenant-1", "tenant-10", "default"]),
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,15}", fullmatch=True),
)
MODELS = st.one_of(
    st.sampled_from(["m", "M", "m ", "model-a", "model-b", "default", "\u00e9", "e\u0301"]),
    st.text(min_size=1, max_size=12),
)
CONTENTS = st.one_of(
    st.sampled_from(
        [
            "Answer in French.",
            "Answer in German.",
            "answer in french.",
            "Hi, I use the app.",
            "Hello! How can I help?",
            "",
            " ",
        ]
    ),
    st.text(max_size=30),
)
ROLES = st.sampled_from(["system", "user", "assistant"])
HISTORIES = st.one_of(st.none(), st.lists(st.tuples(ROLES, CONTENTS), max_size=3).map(tuple))
#: Real questions, paraphrase pairs among them, so that the embedder sees near matches.
QUESTIONS = [
    "How do I reset my password?",
    "How can I reset my password?",
    "What is Redis?",
    "What is Redis ?",
    "What's the capital of France?",
    "What is the capital of France?",
    "How do I delete my account?",
    "Which plan includes priority support?",
    "what is redis?",
]
#: A paraphrase of each question above (both ways round): served by meaning, in its scope only.
PARAPHRASES = {
    "How do I reset my password?": "How can I reset my password?",
    "How can I reset my password?": "How do I reset my password?",
    "What is Redis?": "what is redis?",
    "What is Redis ?": "What is Redis?",
    "what is redis?": "What is Redis?",
    "What's the capital of France?": "What is the capital of France?",
    "What is the capital of France?": "What's the capital of France?",
}
PROMPTS = st.one_of(
    st.sampled_from(QUESTIONS), st.text(min_size=1, max_size=40).filter(lambda s: bool(s.strip()))
)


@st.composite
def case_batches(
    draw: st.DrawFn, size: int, prompts: st.SearchStrategy[str] = PROMPTS
) -> list[Case]:
    """`size` cases built from small pools, so that scopes and prompts recur across them
    (two namespaces at least: hypothesis favours the smallest pools)."""
    namespaces = draw(st.lists(NAMESPACES, min_size=2, max_size=3, unique=True))
    models = draw(st.lists(MODELS, min_size=1, max_size=3, unique=True))
    histories = draw(st.lists(HISTORIES, min_size=1, max_size=3, unique=True))
    texts = draw(st.lists(prompts, min_size=1, max_size=4, unique=True))
    case = st.builds(
        Case,
        st.sampled_from(namespaces),
        st.sampled_from(models),
        st.sampled_from(histories),
        st.sampled_from(texts),
    )
    return draw(st.lists(case, min_size=size, max_size=size))
