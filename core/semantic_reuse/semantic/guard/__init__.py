"""The match guard: refuse a semantic match that an embedding cannot tell apart.

Sentence embeddings place "What is 2+2?" next to "What is 2+3?", "Is X safe?" next to
"Is X not safe?", "flights from Paris to Rome" next to "flights from Rome to Paris" and
"the capital of France" next to "the capital of Spain". :class:`MatchGuard` compares the
two prompts with cheap, general linguistic rules and refuses the match when they differ in

- ``numbers``: digits ("2", "3.5", "10,000", "10k", "3rd"), number words ("two",
  "twenty-one", "third"), Chinese numerals (三, 十五, 第一);
- ``negation``: "not", "n't", "never", "no", "without", "non-"...; Chinese 不, 没, 未, 别,
  无 (leaving "A-not-A" questions such as 是不是 and words such as 不错 alone), but not
  question tags ("... or not?", "why or why not?");
- ``direction``: the same two words on the two sides of an asymmetric marker in opposite
  orders ("from A to B" / "from B to A", "A to B", "A bigger than B", 从A到B, A比B);
- ``entities``: a proper name, acronym or model number mentioned by one prompt and
  nowhere in the other ("France" / "Spain", "UCLA" / "USC", 北京 / 上海). A name counts
  as mentioned in any case, stem or derived form ("India" / "indian", 南宁市 / 南宁), and
  an acronym matches the initials of a name ("ML" / "Machine Learning", "JS" /
  "JavaScript").

Everything runs on the two strings alone: a regex tokenizer for English and Latin script
(capitalisation marks English names), and for Chinese jieba's segmenter and its
part-of-speech tags (person, place, organisation names), loaded on first use. The
alternative ``entities="spacy"`` uses spaCy's named-entity recogniser instead of the
capitalisation rules; it costs a parse per new prompt (milliseconds, where the lexical
rules take tens of microseconds) and earned less on the dev sets
(``benchmarks/guard_study.py``). Each prompt's analysis is cached per guard (LRU), so
checking one query against several candidates analyses it once.

Which differences refuse a match (``mismatch="replace"``, the default) is tuned on the
labelled dev sets: numbers refuse when both prompts state numbers and they differ
("2+2" / "2+3"); entities refuse when each prompt names something the other does not
("France" / "Spain"), and not when one prompt merely adds a name ("best IIT" / "best
IIT in India"). ``mismatch="any"`` refuses on any one-sided difference as well.

Modules: ``match`` (the guard, its verdicts and the comparisons), ``profile`` (what is
extracted from a prompt, and the cached analysis), ``english`` and ``chinese`` (the rules
per language), ``direction`` (word pairs around asymmetric markers, for both), ``lexicon``
(the word lists).
"""

from .match import GuardVerdict, MatchGuard, MismatchMode, swapped_pair, unmatched_entity
from .profile import EntityMode, TextProfile

__all__ = [
    "EntityMode",
    "GuardVerdict",
    "MatchGuard",
    "MismatchMode",
    "TextProfile",
    "swapped_pair",
    "unmatched_entity",
]
