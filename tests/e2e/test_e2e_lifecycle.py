"""Issue acceptance with real processes: create -> Deployed -> predict -> logs -> metrics -> stop/start/delete."""

from __future__ import annotations

import time
from typing import Any

import httpx
import numpy as np
import pytest
from e2e_support import Server, create, replica_processes, setup_group, wait_for

pytestmark = pytest.mark.slow


def test_lifecycle_predict_logs_metrics(server: Server, iris_model: tuple[Any, Any, np.ndarray]) -> None:
    _, model, X = iris_model
    setup_group(server)
    dep = create(server)
    dep_id = dep["id"]
    dep = server.wait_status(dep_id, "Deployed")
    assert dep["available_replicas"] == 1
    assert dep["endpoint"] == f"{server.url}/deployment/{dep_id}/api/v1.0/predictions"

    rows = X[:5]
    expected = model.predict_proba(rows)
    v1 = httpx.post(dep["endpoint"], json={"data": {"ndarray": rows.tolist()}})
    assert v1.status_code == 200, v1.text
    np.testing.assert_allclose(np.asarray(v1.json()["data"]["ndarray"]), expected, rtol=1e-6)

    v2_body = {"inputs": [{"name": "input-0", "shape": list(rows.shape), "datatype": "FP64",
                           "data": rows.ravel().tolist()}]}
    v2 = httpx.post(f"{server.url}/deployment/{dep_id}/v2/models/{dep_id}/infer", json=v2_body)
    assert v2.status_code == 200, v2.text
    out = v2.json()["outputs"][0]
    np.testing.assert_allclose(np.asarray(out["data"]).reshape(out["shape"]), expected, rtol=1e-6)

    for _ in range(20):
        assert httpx.post(dep["endpoint"], json={"data": {"ndarray": rows[:1].tolist()}}).status_code == 200

    replica = server.deployment(dep_id)["replicas_status"][0]["name"]
    logs = server.api("GET", f"/deployments/{dep_id}/logs", params={"replica": replica, "tail": 50})
    assert logs.status_code == 200 and logs.headers["content-type"].startswith("text/plain")
    assert logs.text.strip(), "replica log is empty"

    def traffic_seen() -> bool:
        m = server.api("GET", f"/deployments/{dep_id}/metrics", params={"window": "5m"}).json()
        latency_seen = any(v is not None for v in m["latency_ms"]["p50"])
        return sum(m["requests"]) >= 22 and any(q > 0 for q in m["qps"]) and latency_seen

    try:
        wait_for(traffic_seen, 30, 0.5, "request metrics")
    except AssertionError:
        print(server.api("GET", f"/deployments/{dep_id}/metrics", params={"window": "5m"}).text)
        raise
    prom = httpx.get(f"{server.url}/metrics", headers=server.headers).text
    assert f'deployment="{dep_id}"' in prom

    assert server.api("POST", f"/deployments/{dep_id}/stop").status_code == 200
    server.wait_status(dep_id, "Stopped")
    assert httpx.post(dep["endpoint"], json={"data": {"ndarray": rows.tolist()}}).status_code == 503
    assert not replica_processes(server.data_dir)

    assert server.api("POST", f"/deployments/{dep_id}/start").status_code == 200
    server.wait_status(dep_id, "Deployed")
    assert httpx.post(dep["endpoint"], json={"data": {"ndarray": rows.tolist()}}).status_code == 200

    assert server.api("DELETE", f"/deployments/{dep_id}").status_code == 204
    assert server.api("GET", f"/deployments/{dep_id}").status_code == 404
    wait_for(lambda: httpx.post(dep["endpoint"], json={}).status_code == 404, 15, what="gateway 404")
    wait_for(lambda: not replica_processes(server.data_dir), 30, what="replicas gone")


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"model_uri": "file://{root}/does-not-exist"}, "ModelLoadFailed"),
        ({"model_uri": "file://{root}/crashing", "image": "modeldeck/python-server:latest"}, "CrashLoop"),
        ({"image": "acme/broken-server:1.0"}, "ImageNotRunnable"),
    ],
)
def test_failures_reach_failed(server: Server, overrides: dict[str, str], reason: str) -> None:
    crashing = server.model_root / "crashing"
    crashing.mkdir(exist_ok=True)
    (crashing / "Model.py").write_text(
        "import os\nclass Model:\n    def __init__(self, *a, **k):\n        pass\n"
        "    def load(self):\n        os._exit(3)\n    def predict(self, X, names):\n        return X\n"
    )
    setup_group(server)
    body = {k: v.format(root=server.model_root) for k, v in overrides.items()}
    dep = create(server, **body)
    t0 = time.monotonic()
    failed = server.wait_status(dep["id"], "Failed", timeout=60)
    assert time.monotonic() - t0 < 60
    assert failed["reason"] == reason, failed
    assert failed["message"], failed


def test_unknown_image_refused_at_create(server: Server) -> None:
    setup_group(server)
    resp = server.api("POST", "/deployments", json={
        "name": "other", "group": "team", "instance_type": "small", "replicas": 1, "image": "example/tf-serving:2",
    })
    assert resp.status_code == 422, resp.text
    error = resp.json()["error"]
    assert error["code"] == "IMAGE_NOT_RUNNABLE"
    assert "modeldeck/sklearn-server" in error["message"] and "acme/broken-server" in error["message"]
    assert server.api("GET", "/deployments").json()["total"] == 0
