"""The verifier's tree ensemble: exported from scikit-learn, evaluated by numpy, kept as JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier

from semantic_reuse.semantic.verify import TreeEnsemble


def _fitted(seed: int = 0) -> tuple[HistGradientBoostingClassifier, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(2000, 6)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = np.nan  # missing values take the learned side
    y = ((np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 3]) ** 2) > 0.7).astype(int)
    model = HistGradientBoostingClassifier(max_iter=60, max_leaf_nodes=15, random_state=seed)
    return model.fit(x.astype(np.float64), y), x


def test_numpy_scores_equal_scikit_learn_decision_function() -> None:
    model, x = _fitted()
    ensemble = TreeEnsemble.from_sklearn(model)
    np.testing.assert_allclose(ensemble.raw(x), model.decision_function(x), atol=1e-5)
    np.testing.assert_allclose(
        ensemble.probability(x), model.predict_proba(x.astype(np.float64))[:, 1], atol=1e-5
    )


def test_json_round_trip_scores_the_same() -> None:
    model, x = _fitted(1)
    ensemble = TreeEnsemble.from_sklearn(model)
    again = TreeEnsemble.from_dict(json.loads(json.dumps(ensemble.to_dict())))
    np.testing.assert_allclose(again.raw(x), ensemble.raw(x), atol=1e-5)


@pytest.mark.parametrize("rows", [0, 1, 7])
def test_any_number_of_rows(rows: int) -> None:
    model, x = _fitted(2)
    scores = TreeEnsemble.from_sklearn(model).raw(x[:rows])
    assert scores.shape == (rows,)
