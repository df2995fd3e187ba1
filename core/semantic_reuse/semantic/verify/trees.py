"""A gradient-boosted tree ensemble evaluated with numpy: the verifier's decision head.

Training uses scikit-learn's ``HistGradientBoostingClassifier`` (:meth:`TreeEnsemble.
from_sklearn`, at training time only); the trees are written out as plain arrays (JSON), and
scoring needs nothing but numpy: every tree of the ensemble is walked at once, one level a
step, for every candidate at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FloatMatrix = npt.NDArray[np.float32]
FloatVector = npt.NDArray[np.float64]
IntMatrix = npt.NDArray[np.int32]


@dataclass(frozen=True, slots=True, eq=False)
class TreeEnsemble:
    """Trees as padded arrays, one row per tree: node ``j`` of tree ``t`` tests
    ``x[feature[t, j]] <= threshold[t, j]`` (NaN goes to ``missing_left[t, j]``'s side) and
    goes to ``left[t, j]`` or ``right[t, j]``; a leaf (``leaf[t, j]``) holds ``value[t, j]``.
    The raw score is ``baseline`` plus the leaves reached; a probability is its sigmoid."""

    feature: IntMatrix
    threshold: FloatMatrix
    left: IntMatrix
    right: IntMatrix
    leaf: npt.NDArray[np.bool_]
    missing_left: npt.NDArray[np.bool_]
    value: FloatMatrix
    baseline: float
    depth: int

    def raw(self, x: FloatMatrix) -> FloatVector:
        """The raw (log-odds) score of each row of `x`."""
        rows = np.asarray(x, dtype=np.float32)
        n, trees = rows.shape[0], self.feature.shape[0]
        if n == 0:
            return np.zeros(0, dtype=np.float64)
        tree = np.broadcast_to(np.arange(trees), (n, trees))
        sample = np.broadcast_to(np.arange(n)[:, None], (n, trees))
        node = np.zeros((n, trees), dtype=np.int32)
        for _ in range(self.depth):
            at_leaf = self.leaf[tree, node]
            if at_leaf.all():
                break
            values = rows[sample, self.feature[tree, node]]
            go_left = np.where(
                np.isnan(values),
                self.missing_left[tree, node],
                values <= self.threshold[tree, node],
            )
            step = np.where(go_left, self.left[tree, node], self.right[tree, node])
            node = np.where(at_leaf, node, step)
        leaves = self.value[tree, node].astype(np.float64)
        return np.asarray(self.baseline + leaves.sum(axis=1), dtype=np.float64)

    def probability(self, x: FloatMatrix) -> FloatVector:
        return np.asarray(1.0 / (1.0 + np.exp(-self.raw(x))), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "baseline": self.baseline,
            "depth": self.depth,
            "trees": [
                {
                    "feature": self.feature[t].tolist(),
                    "threshold": [float(v) for v in self.threshold[t]],  # exact: no rounding
                    "left": self.left[t].tolist(),
                    "right": self.right[t].tolist(),
                    "leaf": self.leaf[t].astype(int).tolist(),
                    "missing_left": self.missing_left[t].astype(int).tolist(),
                    "value": [float(v) for v in self.value[t]],
                }
                for t in range(self.feature.shape[0])
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TreeEnsemble:
        trees = data["trees"]
        width = max(len(t["feature"]) for t in trees)

        def stack(key: str, dtype: Any, fill: Any) -> Any:
            out = np.full((len(trees), width), fill, dtype=dtype)
            for i, tree in enumerate(trees):
                out[i, : len(tree[key])] = tree[key]
            return out

        return cls(
            feature=stack("feature", np.int32, 0),
            threshold=stack("threshold", np.float32, 0.0),
            left=stack("left", np.int32, 0),
            right=stack("right", np.int32, 0),
            leaf=stack("leaf", np.bool_, True),
            missing_left=stack("missing_left", np.bool_, True),
            value=stack("value", np.float32, 0.0),
            baseline=float(data["baseline"]),
            depth=int(data["depth"]),
        )

    @classmethod
    def from_sklearn(cls, model: Any) -> TreeEnsemble:
        """The trees of a fitted binary ``HistGradientBoostingClassifier`` (numeric features).

        Reads the fitted predictors' node arrays (``_predictors``, ``_baseline_prediction``):
        scikit-learn's own layout, checked against its ``decision_function`` by the trainer."""
        predictors = [iteration[0] for iteration in model._predictors]
        nodes = [p.nodes for p in predictors]
        width = max(len(n) for n in nodes)
        count = len(nodes)
        feature = np.zeros((count, width), dtype=np.int32)
        threshold = np.zeros((count, width), dtype=np.float32)
        left = np.zeros((count, width), dtype=np.int32)
        right = np.zeros((count, width), dtype=np.int32)
        leaf = np.ones((count, width), dtype=np.bool_)
        missing_left = np.ones((count, width), dtype=np.bool_)
        value = np.zeros((count, width), dtype=np.float32)
        for t, n in enumerate(nodes):
            k = len(n)
            feature[t, :k] = n["feature_idx"]
            # float32 thresholds rounded down: a float32 x is <= one iff it is <= the float64 split.
            threshold[t, :k] = _float32_floor(n["num_threshold"])
            left[t, :k] = n["left"]
            right[t, :k] = n["right"]
            leaf[t, :k] = n["is_leaf"].astype(bool)
            missing_left[t, :k] = n["missing_go_to_left"].astype(bool)
            value[t, :k] = n["value"]
        depth = int(max(int(n["depth"].max()) for n in nodes)) + 1
        baseline = float(np.asarray(model._baseline_prediction).ravel()[0])
        return cls(feature, threshold, left, right, leaf, missing_left, value, baseline, depth)


def _float32_floor(values: Any) -> npt.NDArray[np.float32]:
    """The largest float32 <= each float64 (so ``x32 <= t32`` iff ``x32 <= t64``)."""
    wide = np.asarray(values, dtype=np.float64)
    narrow = wide.astype(np.float32)
    over = narrow.astype(np.float64) > wide
    narrow[over] = np.nextafter(narrow[over], np.float32(-np.inf))
    return narrow
