"""Helpers for the model server tests: small models of every flavor, real server processes, HTTP."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

IRIS_COLUMNS = ["sepal_length", "sepal_width", "petal_length", "petal_width"]

CUSTOM_MODEL = """
import time
import joblib
import numpy as np


class Model:
    class_names = ["setosa", "versicolor", "virginica"]

    def __init__(self, model_uri=None):
        self.model_uri = model_uri
        self.model = None

    def load(self):
        self.model = joblib.load(f"{self.model_uri}/clf.joblib")

    def predict(self, X, feature_names, meta=None):
        if isinstance(X, str):
            return X.upper()
        if isinstance(X, bytes):
            return X[::-1]
        if isinstance(X, dict):
            return {"echo": X, "names": feature_names}
        X = np.asarray(X, dtype=float)
        if X[0, 0] < 0:  # a slow request, for the graceful shutdown test
            time.sleep(-X[0, 0])
        return self.model.predict_proba(X)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(port: int, method: str, path: str, body: bytes | str | None = None) -> tuple[int, Any]:
    """One HTTP request; the answer parsed as JSON when it is JSON."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        data = body.encode() if isinstance(body, str) else body
        conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        raw = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(raw)
    except ValueError:
        return resp.status, raw.decode()


def post(port: int, path: str, payload: Any) -> tuple[int, Any]:
    return request(port, "POST", path, json.dumps(payload))


@dataclass
class ServerProcess:
    """`python -m modeldeck.serving` in a real process, on a free port."""

    args: list[str]
    log_dir: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "modeldeck.serving", "--port", str(self.port), *self.args]
        env = {**os.environ, **self.env}
        self.proc = subprocess.Popen(
            cmd,
            stdout=(self.log_dir / "stdout.log").open("wb"),
            stderr=(self.log_dir / "stderr.log").open("wb"),
            env=env,
        )
        return self

    @property
    def stderr(self) -> str:
        return (self.log_dir / "stderr.log").read_text()

    def wait_ready(self, timeout: float = 60) -> ServerProcess:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.stderr}")
            try:
                if request(self.port, "GET", "/v2/health/ready")[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server not ready after {timeout}s:\n{self.stderr}")

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


@dataclass
class Built:
    """A model on disk, and what the same model answers in this process."""

    path: Path
    X: np.ndarray
    expected: list[np.ndarray]  # one array per output, in the server's output order
    primary: int = 0


def iris_data() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return X, y


def build_sklearn(root: Path) -> Built:
    import joblib
    from sklearn.linear_model import LogisticRegression

    X, y = iris_data()
    model = LogisticRegression(max_iter=1000).fit(X, y)
    (root / "sklearn").mkdir(exist_ok=True)
    joblib.dump(model, root / "sklearn" / "model.joblib")
    Xt = X[::15].copy()
    return Built(root / "sklearn", Xt, [model.predict_proba(Xt)])


def build_xgboost(root: Path) -> Built:
    import xgboost as xgb

    X, y = iris_data()
    booster = xgb.train(
        {"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "nthread": 1},
        xgb.DMatrix(X, label=y),
        num_boost_round=8,
    )
    (root / "xgboost").mkdir(exist_ok=True)
    booster.save_model(str(root / "xgboost" / "model.json"))
    Xt = X[::15].copy()
    return Built(root / "xgboost", Xt, [booster.predict(xgb.DMatrix(Xt))])


def build_lightgbm(root: Path) -> Built:
    import lightgbm as lgb

    X, y = iris_data()
    booster = lgb.train(
        {"objective": "binary", "verbose": -1, "num_leaves": 7, "num_threads": 1},
        lgb.Dataset(X, label=(y == 1).astype(int)),
        num_boost_round=8,
    )
    (root / "lightgbm").mkdir(exist_ok=True)
    booster.save_model(str(root / "lightgbm" / "model.txt"))
    Xt = X[::15].copy()
    return Built(root / "lightgbm", Xt, [booster.predict(Xt)])


def build_onnx(root: Path) -> Built:
    import onnxruntime as ort
    from skl2onnx import to_onnx
    from sklearn.linear_model import LogisticRegression

    X, y = iris_data()
    X32 = X.astype(np.float32)
    onx = to_onnx(LogisticRegression(max_iter=1000).fit(X32, y), X32[:1])  # ZipMap probabilities
    (root / "onnx").mkdir(exist_ok=True)
    (root / "onnx" / "model.onnx").write_bytes(onx.SerializeToString())
    sess = ort.InferenceSession(str(root / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    Xt = X32[::15].copy()
    label, probs = sess.run(None, {sess.get_inputs()[0].name: Xt})
    probs_arr = np.array([[row[k] for k in sorted(row)] for row in probs], dtype=np.float32)
    return Built(root / "onnx", Xt, [np.asarray(label), probs_arr], primary=1)


def build_mlflow(root: Path) -> Built:
    """Saved to a folder, and registered as models:/iris-rf/1 in a file-based MLflow registry under root."""
    import mlflow
    import mlflow.pyfunc
    import mlflow.sklearn
    import pandas as pd
    from mlflow.models import infer_signature
    from sklearn.ensemble import RandomForestClassifier

    X, y = iris_data()
    frame = pd.DataFrame(X, columns=IRIS_COLUMNS)
    model = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(frame, y)
    path = root / "mlflow"
    shutil.rmtree(path, ignore_errors=True)
    kwargs: dict[str, Any] = {
        "signature": infer_signature(frame, model.predict(frame)),
        "serialization_format": "cloudpickle",
        "pip_requirements": ["scikit-learn"],
    }
    mlflow.sklearn.save_model(model, str(path), **kwargs)
    saved_env = {k: os.environ.get(k) for k in MLFLOW_ENV}
    os.environ.update(MLFLOW_ENV)
    mlflow.set_tracking_uri(mlflow_tracking_uri(root))
    try:
        with mlflow.start_run():
            mlflow.sklearn.log_model(model, name="model", registered_model_name="iris-rf", **kwargs)
    finally:
        mlflow.set_tracking_uri(None)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    Xt = X[::15].copy()
    expected = np.asarray(mlflow.pyfunc.load_model(str(path)).predict(pd.DataFrame(Xt, columns=IRIS_COLUMNS)))
    return Built(path, Xt, [expected])


MLFLOW_ENV = {"MLFLOW_ALLOW_FILE_STORE": "true"}


def mlflow_tracking_uri(root: Path) -> str:
    return f"file://{root}/mlruns"


def build_python(root: Path) -> Built:
    import joblib
    from sklearn.linear_model import LogisticRegression

    X, y = iris_data()
    model = LogisticRegression(max_iter=500, C=0.5).fit(X, y)
    path = root / "python"
    path.mkdir(exist_ok=True)
    joblib.dump(model, path / "clf.joblib")
    (path / "Model.py").write_text(CUSTOM_MODEL)
    Xt = X[::15].copy()
    return Built(path, Xt, [model.predict_proba(Xt)])


BUILDERS = {
    "sklearn": build_sklearn,
    "xgboost": build_xgboost,
    "lightgbm": build_lightgbm,
    "onnx": build_onnx,
    "mlflow": build_mlflow,
    "python": build_python,
}
