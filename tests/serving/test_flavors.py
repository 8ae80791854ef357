"""Loaders, in this process: flavor detection, predictions equal the library's own, load errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from serving_helpers import Built

from modeldeck.serving.flavors import LoadOptions, ModelLoadError, detect, load
from modeldeck.serving.protocols.common import to_array


@pytest.mark.parametrize("flavor", ["sklearn", "xgboost", "lightgbm", "onnx", "mlflow", "python"])
def test_each_flavor_is_detected_and_predicts_like_the_library(built: dict[str, Built], flavor: str) -> None:
    b = built[flavor]
    assert detect(b.path) == flavor
    p = load(b.path, "auto", LoadOptions())
    assert p.flavor == flavor
    outs = p.predict(b.X, None)
    assert len(outs) == len(b.expected)
    for got, want in zip(outs, b.expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert p.primary_output == b.primary


def test_sklearn_method_predict(built: dict[str, Built]) -> None:
    import joblib

    b = built["sklearn"]
    p = load(b.path, "sklearn", LoadOptions(method="predict"))
    model = joblib.load(b.path / "model.joblib")
    np.testing.assert_array_equal(p.predict(b.X, None)[0], model.predict(b.X))
    assert not p.slow and p.spec.n_features == 4 and p.spec.dtype == np.float64


def test_sklearn_text_pipeline_takes_strings(tmp_path: Path) -> None:
    import joblib
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.naive_bayes import MultinomialNB
    from sklearn.pipeline import make_pipeline

    texts, labels = ["good movie", "bad movie", "great film", "awful film"], [1, 0, 1, 0]
    pipe = make_pipeline(CountVectorizer(), MultinomialNB()).fit(texts, labels)
    joblib.dump(pipe, tmp_path / "model.pkl")
    p = load(tmp_path, "auto", LoadOptions())
    assert p.spec.dtype == object and p.spec.ndim is None
    X = to_array(["good film", "bad movie"], p.spec, "data.ndarray")
    np.testing.assert_array_equal(p.predict(X, None)[0], pipe.predict_proba(["good film", "bad movie"]))


def test_a_model_file_uri_works_too(built: dict[str, Built]) -> None:
    p = load(built["sklearn"].path / "model.joblib", "auto", LoadOptions())
    assert p.flavor == "sklearn"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "cannot tell the model flavor"),
        ({"README.md": b"hi"}, "cannot tell the model flavor"),
        ({"model.joblib": b"not a pickle"}, "cannot unpickle model.joblib"),
        ({"model.onnx": b"garbage"}, "cannot load ONNX model"),
        ({"a.joblib": b"x", "b.joblib": b"y"}, "several scikit-learn model files"),
        ({"Model.py": b"x = 1\n"}, "defines no class Model"),
        ({"Model.py": b"import nosuchmodule_xyz\n"}, "importing Model.py failed"),
        ({"Model.py": b"class Model:\n    pass\n"}, "has no predict"),
        (
            {
                "Model.py": b"class Model:\n    def load(self):\n        raise IOError('weights missing')\n"
                b"    def predict(self, X, names):\n        return X\n"
            },
            "weights missing",
        ),
    ],
)
def test_load_errors_are_clear(tmp_path: Path, files: dict[str, bytes], message: str) -> None:
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    import sys

    sys.modules.pop("Model", None)
    try:
        with pytest.raises(ModelLoadError, match=message):
            load(tmp_path, "auto", LoadOptions())
    finally:
        sys.modules.pop("Model", None)
        if str(tmp_path) in sys.path:
            sys.path.remove(str(tmp_path))


def test_unknown_flavor(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="unknown flavor"):
        load(tmp_path, "tensorflow", LoadOptions())


def test_wrong_flavor_for_the_files(built: dict[str, Built]) -> None:
    with pytest.raises(ModelLoadError, match="no ONNX model file"):
        load(built["sklearn"].path, "onnx", LoadOptions())
