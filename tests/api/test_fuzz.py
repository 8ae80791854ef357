"""Schemathesis over the whole OpenAPI document: no request, valid or not, may produce a 5xx.

A real server (uvicorn in a thread) on the test database, called as an administrator. Bounded:
derandomized, a fixed number of examples per operation. Operations with a deployment ID are also
aimed at a real deployment so bodies reach the service code, not only the 404 path.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.result import Ok

from api.factories import body, live_server, make_group, make_instance_type, make_user
from modeldeck.app import create_app
from modeldeck.runtimes.fake import FakeRuntime
from modeldeck.settings import Settings

EXAMPLES = 25
TARGET = "fuzz-target"


@pytest.fixture
def served(settings: Settings) -> Iterator[tuple[str, dict[str, str]]]:
    app = create_app(replace(settings, controller_enabled=False), runtime=FakeRuntime())
    with live_server(app) as url:
        db = app.state.platform.db
        make_group(db, "team")
        make_instance_type(db, "cpu-1")
        admin = make_user(db, "root", role="admin")
        resp = httpx.post(f"{url}/api/v1/deployments", json=body(id=TARGET), headers=admin)
        assert resp.status_code == 201, resp.text
        yield url, admin


def _known_references(case: Any) -> Any:
    # Random group and instance type names stop at a 422; real ones let the rest of the body through.
    if isinstance(case.body, dict):
        for key, value in (("group", "team"), ("instance_type", "cpu-1")):
            if key in case.body:
                case.body[key] = value
    return case


def _strategy(operation: Any) -> Any:
    path = {"deployment_id": TARGET} if "{deployment_id}" in operation.path else None
    strategies = [operation.as_strategy(generation_mode=mode) for mode in GenerationMode]
    if operation.method.upper() != "DELETE" and (path or operation.path == "/api/v1/deployments"):
        strategies += [
            operation.as_strategy(generation_mode=mode, path_parameters=path).map(_known_references)
            for mode in GenerationMode
        ]
    return st.one_of(strategies)


def _server_errors(operation: Any, url: str, admin: dict[str, str]) -> list[str]:
    seen: list[str] = []

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=_strategy(operation))
    def run(case: Any) -> None:
        response = case.call(base_url=url, headers=admin)
        if response.status_code >= 500 and len(seen) < 3:
            seen.append(f"{response.status_code} {case.as_curl_command(headers=admin)}")

    run()
    return seen


def test_no_server_errors(served: tuple[str, dict[str, str]]) -> None:
    url, admin = served
    schema = schemathesis.openapi.from_url(f"{url}/api/v1/openapi.json")
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results), "the OpenAPI document has invalid operations"
    assert len(operations) >= 20
    # Deletes last, so the other operations still find what they could reach.
    operations.sort(key=lambda op: op.method.upper() == "DELETE")
    failures: list[str] = []
    started = time.monotonic()
    for operation in operations:
        if seen := _server_errors(operation, url, admin):
            failures.append(f"{operation.method.upper()} {operation.path}:\n  " + "\n  ".join(seen))
    assert not failures, "server errors:\n" + "\n".join(failures)
    assert time.monotonic() - started < 90
