"""XGBoost (`*.json`, `*.ubj`, `*.bst`, `*.xgb`) and LightGBM (`*.txt`, `*.lgb`) native model files.

They answer what the booster's own `predict` answers (probabilities for binary/softprob objectives).
A model pickled through the scikit-learn API (`XGBClassifier`, `LGBMClassifier`) is the sklearn flavor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .base import InputSpec, LoadOptions, ModelLoadError, Predictor, find_files

XGB_SUFFIXES = (".ubj", ".bst", ".xgb", ".json")
LGB_SUFFIXES = (".txt", ".lgb", ".lgbm")


def _head(path: Path, n: int = 256) -> bytes:
    with path.open("rb") as fh:
        return fh.read(n)


def xgboost_files(path: Path) -> list[Path]:
    out = []
    for f in find_files(path, XGB_SUFFIXES):
        if f.suffix.lower() != ".json" or b'"learner"' in _head(f, 4096):
            out.append(f)
    return out


def lightgbm_files(path: Path) -> list[Path]:
    return [f for f in find_files(path, LGB_SUFFIXES) if f.suffix.lower() != ".txt" or _head(f, 5) == b"tree\n"]


def _pick(files: list[Path], path: Path, what: str) -> Path:
    if not files:
        raise ModelLoadError(f"no {what} model file found in {path}")
    if len(files) > 1:
        named = [f for f in files if f.stem == "model"]
        if len(named) != 1:
            raise ModelLoadError(f"several {what} model files in {path}: {', '.join(f.name for f in files)}")
        return named[0]
    return files[0]


class XGBoostPredictor(Predictor):
    flavor = "xgboost"
    platform = "xgboost"

    def __init__(self, booster: Any) -> None:
        self.booster = booster
        names = booster.feature_names
        self.spec = InputSpec(
            dtype=np.dtype(np.float64),
            n_features=int(booster.num_features()),
            allow_nan=True,  # missing values
            feature_names=tuple(names) if names else None,
        )
        self.output_names = ("predict",)

    def predict(self, X: np.ndarray, names: list[str] | None) -> list[np.ndarray]:
        return [np.asarray(self.booster.inplace_predict(X, validate_features=False))]


class LightGBMPredictor(Predictor):
    flavor = "lightgbm"
    platform = "lightgbm"

    def __init__(self, booster: Any, threads: int) -> None:
        self.booster = booster
        self.threads = threads
        self.spec = InputSpec(dtype=np.dtype(np.float64), n_features=int(booster.num_feature()), allow_nan=True)
        self.output_names = ("predict",)

    def predict(self, X: np.ndarray, names: list[str] | None) -> list[np.ndarray]:
        return [np.asarray(self.booster.predict(X, num_threads=self.threads))]


def load_xgboost(path: Path, options: LoadOptions) -> Predictor:
    import xgboost as xgb

    f = _pick(xgboost_files(path), path, "XGBoost")
    try:
        booster = xgb.Booster(model_file=str(f))
        booster.set_param({"nthread": options.threads})
    except Exception as e:
        raise ModelLoadError(f"cannot load XGBoost model {f.name}: {e}") from e
    return XGBoostPredictor(booster)


def load_lightgbm(path: Path, options: LoadOptions) -> Predictor:
    import lightgbm as lgb

    f = _pick(lightgbm_files(path), path, "LightGBM")
    try:
        booster = lgb.Booster(model_file=str(f))
    except Exception as e:
        raise ModelLoadError(f"cannot load LightGBM model {f.name}: {e}") from e
    return LightGBMPredictor(booster, options.threads)
