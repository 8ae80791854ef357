"""Load-time fast paths answer exactly what the scikit-learn model's own predict_proba answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.ensemble import ExtraTreesClassifier, GradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression

from modeldeck.serving.flavors import LoadOptions, load
from modeldeck.serving.flavors.fastpaths import fast_path


class MyLogistic(LogisticRegression):
    pass


def _fit(model: Any, classes: int) -> Any:
    X, y = make_classification(n_samples=300, n_features=6, n_informative=4, n_classes=classes, random_state=0)
    return model.fit(X, y)


@pytest.mark.parametrize(
    ("model", "classes", "expected"),
    [
        (RandomForestClassifier(n_estimators=15, random_state=0), 3, "RandomForestClassifier.predict_proba"),
        (RandomForestClassifier(n_estimators=15, random_state=0), 2, "RandomForestClassifier.predict_proba"),
        (ExtraTreesClassifier(n_estimators=10, random_state=0), 2, "ExtraTreesClassifier.predict_proba"),
        (LogisticRegression(max_iter=500), 3, "LogisticRegression.predict_proba"),
        (LogisticRegression(max_iter=500), 2, "LogisticRegression.predict_proba"),
        (MyLogistic(max_iter=500), 3, None),  # a subclass may change anything: no fast path
        (GradientBoostingClassifier(n_estimators=5), 2, None),
    ],
)
def test_fast_paths_are_exact(tmp_path: Path, model: Any, classes: int, expected: str | None) -> None:
    model = _fit(model, classes)
    joblib.dump(model, tmp_path / "model.joblib")
    p = load(tmp_path, "sklearn", LoadOptions())
    assert getattr(p, "fast_path", None) == expected
    rng = np.random.default_rng(42)
    for rows in (1, 5, 100, 1000):
        X = rng.normal(0, 2, size=(rows, 6))
        np.testing.assert_array_equal(p.predict(X, None)[0], model.predict_proba(X))


def test_a_fast_path_that_differs_is_not_used() -> None:
    model = _fit(LogisticRegression(max_iter=500), 3)
    assert fast_path(model, "predict_proba", 6, model.predict_proba) is not None
    assert fast_path(model, "predict_proba", 6, lambda X: model.predict_proba(X) * 1.000001) is None
    assert fast_path(model, "predict", 6, model.predict) is None


def test_fast_paths_can_be_turned_off(tmp_path: Path) -> None:
    joblib.dump(_fit(LogisticRegression(max_iter=500), 3), tmp_path / "model.joblib")
    assert load(tmp_path, "sklearn", LoadOptions(fast_paths=False)).fast_path is None  # type: ignore[attr-defined]
