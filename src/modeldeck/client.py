"""Python SDK: a thin, typed wrapper over the REST API (the CLI is built on it)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx

TERMINAL = {"Deployed", "Failed", "Stopped"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class Client:
    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url.rstrip("/") + "/api/v1", headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        resp = self._http.request(method, path, **kwargs)
        if resp.status_code >= 400:
            try:
                err = resp.json()["error"]
                raise ApiError(resp.status_code, err["code"], err["message"])
            except (ValueError, KeyError, TypeError):
                raise ApiError(resp.status_code, "HTTP_ERROR", resp.text) from None
        if resp.status_code == 204 or not resp.content:
            return None
        if resp.headers.get("content-type", "").startswith("application/json"):
            return resp.json()
        return resp.text

    # auth
    def login(self, username: str, password: str) -> str:
        token: str = self.request("POST", "/auth/login", json={"username": username, "password": password})["token"]
        self._http.headers["Authorization"] = f"Bearer {token}"
        return token

    # deployments
    def list_deployments(self, **filters: Any) -> list[dict[str, Any]]:
        params = {k: v for k, v in filters.items() if v is not None}
        items: list[dict[str, Any]] = self.request("GET", "/deployments", params=params)["items"]
        return items

    def get_deployment(self, deployment_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/deployments/{deployment_id}")
        return result

    def create_deployment(self, **spec: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/deployments", json=spec)
        return result

    def update_deployment(self, deployment_id: str, **changes: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("PATCH", f"/deployments/{deployment_id}", json=changes)
        return result

    def action(self, deployment_id: str, verb: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/deployments/{deployment_id}/{verb}", json=body or {})
        return result

    def delete_deployment(self, deployment_id: str) -> None:
        self.request("DELETE", f"/deployments/{deployment_id}")

    def history(self, deployment_id: str) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", f"/deployments/{deployment_id}/history")
        return result

    def logs(self, deployment_id: str, *, replica: str | None = None, tail: int = 100) -> str:
        params: dict[str, Any] = {"tail": tail}
        if replica:
            params["replica"] = replica
        text: str = self.request("GET", f"/deployments/{deployment_id}/logs", params=params)
        return text

    def follow_logs(self, deployment_id: str, *, replica: str | None = None, tail: int = 100) -> Iterator[str]:
        params: dict[str, Any] = {"tail": tail, "follow": "true"}
        if replica:
            params["replica"] = replica
        with self._http.stream("GET", f"/deployments/{deployment_id}/logs", params=params, timeout=None) as r:
            yield from r.iter_lines()

    def wait(self, deployment_id: str, *, timeout: float = 600.0, interval: float = 0.5) -> dict[str, Any]:
        """Until the deployment settles: Deployed (or Stopped when stopped) or Failed. Failed is terminal."""
        deadline = time.monotonic() + timeout
        while True:
            dep = self.get_deployment(deployment_id)
            settled = dep["observed_generation"] >= dep["generation"] and dep["status"] in TERMINAL
            if settled or time.monotonic() >= deadline:
                return dep
            time.sleep(interval)
