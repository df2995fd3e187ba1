"""The second stage of a semantic lookup: a verifier that scores the candidates the vector
search found, and an error budget that turns its scores into a decision."""

from semantic_reuse.semantic.verify.context_features import TEXT_EXTRAS, FeatureSet
from semantic_reuse.semantic.verify.features import FEATURE_NAMES, WordWeights, pair_features
from semantic_reuse.semantic.verify.trees import TreeEnsemble
from semantic_reuse.semantic.verify.verifier import BudgetPoint, Calibration, Verifier

__all__ = [
    "FEATURE_NAMES",
    "TEXT_EXTRAS",
    "BudgetPoint",
    "Calibration",
    "FeatureSet",
    "TreeEnsemble",
    "Verifier",
    "WordWeights",
    "pair_features",
]
