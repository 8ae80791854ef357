from fastapi.testclient import TestClient


def test_healthz_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/api/v1/openapi.json").status_code == 200
