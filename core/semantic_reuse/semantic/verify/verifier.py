"""The verifier: may the answer cached for one question be served for another?

A :class:`Verifier` scores the few candidates the vector search returned above its floor: a
tree ensemble (:mod:`.trees`) over cheap signals (:mod:`.features`, and the optional ones of
:mod:`.context_features` when its file names them), its output calibrated
(isotonic, fitted on held-apart pairs) into the probability that serving the candidate is
right. An error budget becomes a probability threshold through the calibration table: the
lowest threshold at which, on the held-apart pairs, wrong answers stayed within the budget
among those served.

Weights are JSON files (:data:`BUNDLED`): one per language, trained by
``semantic-reuse train-verifier``; nothing is pickled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from semantic_reuse.errors import ConfigurationError, InvalidRequestError
from semantic_reuse.semantic.guard import MatchGuard
from semantic_reuse.semantic.verify.context_features import FeatureSet
from semantic_reuse.semantic.verify.features import FEATURE_NAMES, WordWeights
from semantic_reuse.semantic.verify.trees import TreeEnsemble

FloatVector = npt.NDArray[np.float64]

FORMAT: Final = "semantic-reuse-verifier/1"
#: The verifiers shipped in the package (``semantic_reuse/semantic/verify/weights/``).
BUNDLED: Final = {"en": "verifier-en.json", "zh": "verifier-zh.json"}


@dataclass(frozen=True, slots=True)
class BudgetPoint:
    """On the held-apart pairs: serving when the probability is >= `probability` served
    `served` answers, of which a share `error_rate` were wrong, and found `recall` of the
    answers that were there to be found."""

    probability: float
    error_rate: float
    served: int
    recall: float


@dataclass(frozen=True, slots=True, eq=False)
class Calibration:
    """Isotonic map from the ensemble's probability to the probability of a right answer."""

    x: FloatVector
    y: FloatVector

    def __call__(self, p: FloatVector) -> FloatVector:
        return np.asarray(np.interp(p, self.x, self.y), dtype=np.float64)


@dataclass(frozen=True, slots=True, eq=False)
class Verifier:
    """Scores (question, cached question) pairs; see the module docstring."""

    name: str
    ensemble: TreeEnsemble = field(repr=False)
    weights: WordWeights = field(repr=False)
    calibration: Calibration = field(repr=False)
    budget: tuple[BudgetPoint, ...] = field(repr=False)
    floor: float
    """Candidates below this cosine are never served (and never scored)."""
    top_k: int
    """How many candidates (best first) it scores, as many as it was trained on."""
    default_error_rate: float
    guard: MatchGuard = field(repr=False)
    card: Mapping[str, Any] = field(default_factory=dict, repr=False)
    """Where it came from: embedder, data, command, figures (the model card's facts)."""
    features: FeatureSet = field(default_factory=lambda: FeatureSet.of(FEATURE_NAMES))
    """The columns its trees read (its file's ``"features"``); the base ones by default."""

    def probabilities(self, query: str, candidates: Sequence[tuple[str, float]]) -> FloatVector:
        """P(right) of serving each candidate's answer for `query`; 0 below the floor."""
        out = np.zeros(len(candidates), dtype=np.float64)
        order = sorted(range(len(candidates)), key=lambda i: -candidates[i][1])
        keep = [i for i in order[: self.top_k] if candidates[i][1] >= self.floor]
        if not keep:
            return out
        rows = self.features.rows(self.guard, self.weights, query, [candidates[i] for i in keep])
        out[keep] = self.calibration(self.ensemble.probability(rows))
        return out

    def best_probability(self, query: str, candidates: Sequence[tuple[str, float]]) -> float:
        """P(right) of serving the best candidate's answer (highest cosine) for `query`, the
        others (up to `top_k`) as its context; 0 when it is below the floor.

        Only the best is ever served: serving a lower one that the verifier preferred gained
        nothing on qqp_dev_5k and tripled the wrong answers on gptcache_mock_pairs
        (docs/benchmarks.md). It is also one tree evaluation instead of `top_k`."""
        if not candidates:
            return 0.0
        order = sorted(range(len(candidates)), key=lambda i: -candidates[i][1])
        if candidates[order[0]][1] < self.floor:
            return 0.0
        keep = [candidates[i] for i in order[: self.top_k] if candidates[i][1] >= self.floor]
        rows = self.features.rows(self.guard, self.weights, query, keep, rows_for=[0])
        return float(self.calibration(self.ensemble.probability(rows))[0])

    def threshold_for(self, max_error_rate: float | None) -> float:
        """The probability to require so that served answers stay within `max_error_rate`
        wrong (on the held-apart pairs); ``None``: the verifier's default budget."""
        budget = self.default_error_rate if max_error_rate is None else max_error_rate
        if isinstance(budget, bool) or not isinstance(budget, (int, float)):
            raise InvalidRequestError(f"max_error_rate must be a number, got {budget!r}")
        if not 0.0 < budget < 1.0:
            raise InvalidRequestError(f"max_error_rate must be in (0, 1), got {budget!r}")
        within = [p.probability for p in self.budget if p.error_rate <= budget and p.served > 0]
        return min(within) if within else float("inf")  # nothing met it: never serve

    def to_dict(self, card: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "name": self.name,
            "features": list(self.features.names),
            "floor": self.floor,
            "top_k": self.top_k,
            "default_error_rate": self.default_error_rate,
            "calibration": {"x": self.calibration.x.tolist(), "y": self.calibration.y.tolist()},
            "budget": [
                {
                    "probability": round(p.probability, 4),
                    "error_rate": round(p.error_rate, 4),
                    "served": p.served,
                    "recall": round(p.recall, 4),
                }
                for p in self.budget
            ],
            "card": {**self.card, **(card or {})},
            "words": self.weights.to_dict(),
            "ensemble": self.ensemble.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], guard: MatchGuard | None = None) -> Verifier:
        if data.get("format") != FORMAT:
            raise ConfigurationError(f"not a verifier file of format {FORMAT!r}")
        names = data.get("features")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ConfigurationError("the verifier file's 'features' must be a list of names")
        features = FeatureSet.of(names)  # an unknown name: a ConfigurationError naming it
        ensemble = TreeEnsemble.from_dict(data["ensemble"])
        splits = ensemble.feature[~ensemble.leaf]
        if splits.size and int(splits.max()) >= len(features.names):
            raise ConfigurationError(
                f"the verifier's trees read column {int(splits.max())} of "
                f"{len(features.names)} features: the file is inconsistent"
            )
        cal = data["calibration"]
        return cls(
            name=str(data["name"]),
            ensemble=ensemble,
            weights=WordWeights.from_dict(data["words"]),
            calibration=Calibration(
                np.asarray(cal["x"], dtype=np.float64), np.asarray(cal["y"], dtype=np.float64)
            ),
            budget=tuple(BudgetPoint(**p) for p in data["budget"]),
            floor=float(data["floor"]),
            top_k=int(data["top_k"]),
            default_error_rate=float(data["default_error_rate"]),
            guard=guard or MatchGuard(),
            card=dict(data.get("card", {})),
            features=features,
        )

    @classmethod
    def from_file(cls, path: str | Path, guard: MatchGuard | None = None) -> Verifier:
        """A verifier written by ``semantic-reuse train-verifier`` (JSON, never pickle)."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read the verifier file {path}: {exc}") from exc
        return cls.from_dict(data, guard)

    @classmethod
    def bundled(cls, language: str, guard: MatchGuard | None = None) -> Verifier:
        """The verifier shipped for `language` (``"en"`` or ``"zh"``)."""
        if language not in BUNDLED:
            raise InvalidRequestError(
                f"language must be one of {sorted(BUNDLED)}, not {language!r}"
            )
        text = (
            resources.files(__package__)
            .joinpath("weights", BUNDLED[language])
            .read_text(encoding="utf-8")
        )
        return cls.from_dict(json.loads(text), guard)
