"""Load-time fast paths for common scikit-learn models.

The same arithmetic as scikit-learn, in the same order, without what scikit-learn repeats on every
call: input validation (the protocols have already checked the request's shape, type and values) and,
for forests, a joblib dispatch and a validation per tree. A fast path is used only if, at load time,
it answers random rows bit for bit like the model's own method; otherwise the model's method is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Fn = Callable[[np.ndarray], Any]


def _forest_proba(model: Any) -> Fn | None:
    """ForestClassifier.predict_proba: the sum of the trees' probabilities in tree order, divided by the
    number of trees, on float32 rows (what scikit-learn does with n_jobs=1)."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    if type(model) not in (RandomForestClassifier, ExtraTreesClassifier) or model.n_outputs_ != 1:
        return None
    trees = [tree.predict_proba for tree in model.estimators_]
    n_classes, n_trees = int(model.n_classes_), len(trees)

    def predict_proba(X: np.ndarray) -> np.ndarray:
        X32 = np.ascontiguousarray(X, dtype=np.float32)
        proba = np.zeros((X32.shape[0], n_classes), dtype=np.float64)
        for tree in trees:
            proba += tree(X32, check_input=False)
        proba /= n_trees
        return proba

    return predict_proba


def _logistic_proba(model: Any) -> Fn | None:
    """LogisticRegression.predict_proba: X @ coef.T + intercept, then softmax (multiclass) or expit."""
    from scipy.special import expit
    from sklearn.linear_model import LogisticRegression

    if type(model) is not LogisticRegression or not isinstance(model.coef_, np.ndarray):
        return None
    coef_t, intercept = model.coef_.T, model.intercept_
    multiclass = len(model.classes_) > 2

    def predict_proba(X: np.ndarray) -> np.ndarray:
        scores = X @ coef_t + intercept
        if multiclass:
            scores -= np.reshape(np.max(scores, axis=1), (-1, 1))
            np.exp(scores, out=scores)
            scores /= np.reshape(np.sum(scores, axis=1), (-1, 1))
            return scores
        prob = np.reshape(scores, (-1,))
        expit(prob, out=prob)
        return np.stack([1 - prob, prob], axis=1)

    return predict_proba


def fast_path(model: Any, method: str, n_features: int, reference: Fn) -> Fn | None:
    """A verified fast version of `reference` (the model's bound method), or None."""
    if method != "predict_proba":
        return None
    for build in (_forest_proba, _logistic_proba):
        try:
            fast = build(model)
        except (ImportError, AttributeError):
            fast = None
        if fast is not None:
            return fast if _same(fast, reference, n_features) else None
    return None


def _same(fast: Fn, reference: Fn, n_features: int) -> bool:
    rng = np.random.default_rng(0)
    try:
        for rows, scale in ((1, 1.0), (7, 3.0), (64, 10.0), (33, 1000.0)):
            X = rng.normal(0.0, scale, size=(rows, n_features))
            got, want = fast(X), np.asarray(reference(X))
            if got.dtype != want.dtype or not np.array_equal(got, want):
                return False
    except Exception:
        return False
    return True
