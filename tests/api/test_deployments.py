"""Deployments API: create, read, list, update, versions, rollback, clients, delete."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import replace
from typing import Any
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.factories import World, body, make_instance_type, make_secret
from modeldeck.deployments.schemas import DeploymentOut, HistoryEntry
from modeldeck.deployments.tables import Deployment, DeploymentClient, DeploymentVersion
from modeldeck.runtimes.fake import FakeRuntime
from modeldeck.settings import Settings

API = "/api/v1/deployments"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The controller would race these tests for the status columns; they test the API alone.
    return replace(settings, controller_enabled=False, base_url="https://md.example.com/")


@pytest.fixture
def world(client: TestClient) -> World:
    return World(client)


@pytest.fixture
def wakes(client: TestClient) -> list[str]:
    woken: list[str] = []
    client.app.state.platform.wake = woken.append  # type: ignore[attr-defined]
    return woken


def error_code(resp: Any) -> str:
    code: str = resp.json()["error"]["code"]
    return code


# -- create -------------------------------------------------------------------------------------


def test_create_answers_deploying_with_endpoints(client: TestClient, world: World, wakes: list[str]) -> None:
    resp = client.post(API, json=body(description="first", metadata={"team": "ds"}, env={"LOG_LEVEL": "debug"}),
                       headers=world.alice)
    assert resp.status_code == 201, resp.text
    dep = resp.json()
    DeploymentOut.model_validate(dep)
    assert re.fullmatch(r"iris-model-[a-z0-9]{5}", dep["id"])
    assert dep["status"] == "Deploying" and dep["reason"] == "Created"
    assert (dep["version"], dep["generation"], dep["observed_generation"]) == (1, 1, 0)
    assert dep["group"] == "team" and dep["stopped"] is False and dep["clients"] == []
    assert dep["created_by"] == dep["updated_by"] == "alice"
    assert dep["metadata"] == {"team": "ds"} and dep["env"] == {"LOG_LEVEL": "debug"}
    assert dep["endpoint_access"] == "public"
    assert dep["endpoint"] == f"https://md.example.com/deployment/{dep['id']}/api/v1.0/predictions"
    assert dep["endpoint_v2"] == f"https://md.example.com/deployment/{dep['id']}/v2/models/{dep['id']}/infer"
    assert dep["example_curl"].startswith('curl -X POST -H "Content-Type: application/json" -d ')
    assert dep["example_curl"].endswith(" " + dep["endpoint"]) and "-u" not in dep["example_curl"]
    assert wakes == [dep["id"]]
    history = client.get(f"{API}/{dep['id']}/history", headers=world.alice).json()
    assert [(h["version"], h["action"], h["message"], h["created_by"]) for h in history] == [
        (1, "create", "Deployment created", "alice")
    ]
    assert client.get(f"{API}/{dep['id']}", headers=world.alice).json() == dep


def test_create_trims_image_and_model_uri_and_uses_update_message(client: TestClient, world: World) -> None:
    dep = world.create(image="  modeldeck/sklearn-server:1 \t", model_uri=" s3://bucket/iris \n",
                       update_message="initial model", endpoint_access="private")
    assert dep["image"] == "modeldeck/sklearn-server:1" and dep["model_uri"] == "s3://bucket/iris"
    assert "-u <client-name>:<client-token>" in dep["example_curl"]
    history = client.get(f"{API}/{dep['id']}/history", headers=world.alice).json()
    assert history[0]["message"] == "initial model"


def test_custom_id_is_kept_and_unique(client: TestClient, world: World) -> None:
    assert world.create(id="my-model")["id"] == "my-model"
    resp = client.post(API, json=body(id="my-model"), headers=world.admin)
    assert resp.status_code == 409 and error_code(resp) == "CONFLICT"
    assert "my-model" in resp.json()["error"]["message"]


@pytest.mark.parametrize("bad", ["ab", "-abc", "abc-", "ABC", "a_b", "a" * 64, "ab c", "abc\n", "a\x00c"])
def test_bad_ids_are_refused_and_reported_unavailable(client: TestClient, world: World, bad: str) -> None:
    resp = client.post(API, json=body(id=bad), headers=world.alice)
    assert resp.status_code == 422 and error_code(resp) == "VALIDATION_ERROR"
    check = client.get(f"/api/v1/deployment-ids/{quote(bad, safe='')}/available", headers=world.alice)
    assert check.status_code == 200
    assert check.json() == {"id": bad, "available": False, "reason": check.json()["reason"]}
    assert check.json()["reason"]


def test_id_availability(client: TestClient, world: World) -> None:
    world.create(id="taken-id")
    free = client.get("/api/v1/deployment-ids/free-id/available", headers=world.bob).json()
    assert free == {"id": "free-id", "available": True, "reason": None}
    taken = client.get("/api/v1/deployment-ids/taken-id/available", headers=world.bob).json()
    assert taken == {"id": "taken-id", "available": False, "reason": "already in use"}
    bad = client.get("/api/v1/deployment-ids/Bad_Id/available", headers=world.bob).json()
    assert bad["available"] is False and "lowercase" in bad["reason"]


def test_generated_id_from_long_name_fits(client: TestClient, world: World) -> None:
    dep = world.create(name="A" * 40 + " " + "b" * 100)
    assert len(dep["id"]) <= 63 and re.fullmatch(r"[a-z0-9][a-z0-9-]{1,61}[a-z0-9]", dep["id"])


@pytest.mark.parametrize("name", ["", " lead", "trail ", "a!b", "x" * 256, "tab\tname", "-dash"])
def test_bad_names(client: TestClient, world: World, name: str) -> None:
    resp = client.post(API, json=body(name=name), headers=world.alice)
    assert resp.status_code == 422 and error_code(resp) == "VALIDATION_ERROR"


@pytest.mark.parametrize("name", ["a", "My model_v2-x", "x" * 255])
def test_good_names(world: World, name: str) -> None:
    assert world.create(name=name)["name"] == name


def test_env_names_and_values(client: TestClient, world: World) -> None:
    resp = client.post(API, json=body(env={"GOOD": "1", "1BAD": "x"}), headers=world.alice)
    assert resp.status_code == 422 and error_code(resp) == "VALIDATION_ERROR"
    assert "1BAD" in resp.json()["error"]["message"]
    resp = client.post(API, json=body(env={"NUM": 3}), headers=world.alice)
    assert resp.status_code == 422
    env = {"A_B": "1", "-x.y": "", "_z9": "v"}
    assert world.create(env=env)["env"] == env


@pytest.mark.parametrize("uri", ["ftp://host/m", "/abs/path", "iris", "nfs://host/path"])
def test_model_uri_schemes_refused(client: TestClient, world: World, uri: str) -> None:
    resp = client.post(API, json=body(model_uri=uri), headers=world.alice)
    assert resp.status_code == 422 and "model_uri" in resp.json()["error"]["message"]


@pytest.mark.parametrize("uri", ["file:///models/iris", "http://h/m.joblib", "https://h/m", "s3://b/k",
                                 "gs://b/k", "models:/iris/3"])
def test_model_uri_schemes_accepted(world: World, uri: str) -> None:
    assert world.create(model_uri=uri)["model_uri"] == uri


def test_empty_model_uri_is_none(world: World) -> None:
    assert world.create(model_uri="  ")["model_uri"] is None


@pytest.mark.parametrize("replicas", [0, 65, -1, "2", 1.5, True, None])
def test_replicas_bounds(client: TestClient, world: World, replicas: Any) -> None:
    resp = client.post(API, json=body(replicas=replicas), headers=world.alice)
    assert resp.status_code == 422, resp.text


def test_replicas_default_and_max(world: World) -> None:
    spec = body()
    del spec["replicas"]
    assert world.create(**spec)["replicas"] == 1
    assert world.create(replicas=64)["replicas"] == 64


def test_references_must_exist(client: TestClient, world: World) -> None:
    resp = client.post(API, json=body(image_pull_secret="regcred"), headers=world.alice)
    assert resp.status_code == 422 and "regcred" in resp.json()["error"]["message"]
    make_secret(world.db, "regcred")
    assert world.create(image_pull_secret="regcred")["image_pull_secret"] == "regcred"
    resp = client.post(API, json=body(instance_type="nope"), headers=world.alice)
    assert resp.status_code == 422 and "nope" in resp.json()["error"]["message"]
    make_instance_type(world.db, "gpu-other", gpu=1, groups=("other",))
    resp = client.post(API, json=body(instance_type="gpu-other"), headers=world.alice)
    assert resp.status_code == 422
    assert world.create(world.bob, group="other", instance_type="gpu-other")["instance_type"] == "gpu-other"


def test_group_must_be_yours(client: TestClient, world: World) -> None:
    resp = client.post(API, json=body(group="other"), headers=world.alice)
    assert resp.status_code == 403
    resp = client.post(API, json=body(group="ghost"), headers=world.alice)
    assert resp.status_code == 403  # same answer whether or not the group exists
    resp = client.post(API, json=body(group="ghost"), headers=world.admin)
    assert resp.status_code == 422 and "ghost" in resp.json()["error"]["message"]
    assert world.create(world.admin, group="other")["group"] == "other"


def test_image_must_be_runnable(client: TestClient, world: World, fake_runtime: FakeRuntime) -> None:
    fake_runtime.runnable_images = ("modeldeck/sklearn-server",)
    resp = client.post(API, json=body(image="nginx:latest"), headers=world.alice)
    assert resp.status_code == 422 and error_code(resp) == "IMAGE_NOT_RUNNABLE"
    assert "modeldeck/sklearn-server" in resp.json()["error"]["message"]
    dep = world.create()
    resp = client.patch(f"{API}/{dep['id']}", json={"image": "nginx:2"}, headers=world.alice)
    assert resp.status_code == 422 and error_code(resp) == "IMAGE_NOT_RUNNABLE"


@pytest.mark.parametrize("extra", [{"instanceType": "cpu-1"}, {"status": "Deployed"}, {"stopped": True}])
def test_unknown_and_status_fields_refused(client: TestClient, world: World, extra: dict[str, Any]) -> None:
    resp = client.post(API, json=body(**extra), headers=world.alice)
    assert resp.status_code == 422


def test_nothing_is_written_when_create_fails(client: TestClient, world: World) -> None:
    client.post(API, json=body(id="half", image_pull_secret="missing"), headers=world.alice)
    with world.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Deployment)) == 0
        assert session.scalar(select(func.count()).select_from(DeploymentVersion)) == 0


# -- read and list ------------------------------------------------------------------------------


def test_get_unknown_is_404(client: TestClient, world: World) -> None:
    resp = client.get(f"{API}/no-such-thing", headers=world.admin)
    assert resp.status_code == 404 and error_code(resp) == "NOT_FOUND"


def _ids(resp: Any) -> list[str]:
    assert resp.status_code == 200, resp.text
    return [d["id"] for d in resp.json()["items"]]


def test_list_newest_update_first_with_filters(client: TestClient, world: World) -> None:
    a = world.create(id="alpha-one", name="Alpha")
    b = world.create(world.carol, id="beta-two", name="Beta Model")
    c = world.create(world.bob, id="gamma-three", name="Gamma", group="other")
    assert _ids(client.get(API, headers=world.admin)) == [c["id"], b["id"], a["id"]]
    client.patch(f"{API}/alpha-one", json={"replicas": 2}, headers=world.carol)
    listing = client.get(API, headers=world.admin).json()
    assert listing["total"] == 3 and [d["id"] for d in listing["items"]] == ["alpha-one", "gamma-three", "beta-two"]
    assert _ids(client.get(API, params={"group": "other"}, headers=world.admin)) == ["gamma-three"]
    assert _ids(client.get(API, params={"q": "MODEL"}, headers=world.admin)) == ["beta-two"]
    assert _ids(client.get(API, params={"q": "a-on"}, headers=world.admin)) == ["alpha-one"]
    assert _ids(client.get(API, params={"q": "%"}, headers=world.admin)) == []
    # mine = last modifier (PrimeHub semantics): carol changed alpha-one after alice created it.
    assert _ids(client.get(API, params={"mine": "true"}, headers=world.carol)) == ["alpha-one", "beta-two"]
    assert _ids(client.get(API, params={"mine": "true"}, headers=world.alice)) == []
    client.post(f"{API}/beta-two/stop", headers=world.alice)
    with world.db.write() as session:  # stand in for the controller
        stopped = session.get(Deployment, "beta-two")
        assert stopped is not None
        stopped.status = "Stopped"
    assert _ids(client.get(API, params={"status": "Stopped"}, headers=world.admin)) == ["beta-two"]
    assert client.get(API, params={"status": "Sleeping"}, headers=world.admin).status_code == 422


def test_members_list_only_their_groups(client: TestClient, world: World) -> None:
    world.create(id="team-dep")
    world.create(world.bob, id="other-dep", group="other")
    assert _ids(client.get(API, headers=world.alice)) == ["team-dep"]
    assert _ids(client.get(API, headers=world.bob)) == ["other-dep"]
    assert _ids(client.get(API, params={"group": "other"}, headers=world.alice)) == []
    assert client.get(API, params={"group": "other"}, headers=world.alice).json()["total"] == 0
    assert sorted(_ids(client.get(API, headers=world.admin))) == ["other-dep", "team-dep"]


def test_pagination(client: TestClient, world: World) -> None:
    made = [world.create(id=f"page-{i:02d}")["id"] for i in range(7)]
    newest_first = made[::-1]
    first = client.get(API, params={"limit": 3}, headers=world.alice).json()
    assert first["total"] == 7 and [d["id"] for d in first["items"]] == newest_first[:3]
    assert _ids(client.get(API, params={"limit": 3, "offset": 3}, headers=world.alice)) == newest_first[3:6]
    assert _ids(client.get(API, params={"limit": 3, "offset": 6}, headers=world.alice)) == newest_first[6:]
    beyond = client.get(API, params={"offset": 50}, headers=world.alice).json()
    assert beyond == {"items": [], "total": 7}
    for bad in ({"limit": 0}, {"limit": 501}, {"offset": -1}):
        assert client.get(API, params=bad, headers=world.alice).status_code == 422


# -- update, versions, stop/start, rollback -----------------------------------------------------


def test_update_creates_a_version(client: TestClient, world: World, wakes: list[str]) -> None:
    dep = world.create(metadata={"a": "1", "b": "2"}, env={"X": "1"})
    resp = client.patch(f"{API}/{dep['id']}", json={"replicas": 3, "metadata": {"c": "3"}, "env": {},
                                                    "update_message": "scale up"}, headers=world.carol)
    assert resp.status_code == 200, resp.text
    new = resp.json()
    assert (new["version"], new["generation"]) == (2, 2)
    assert new["replicas"] == 3 and new["metadata"] == {"c": "3"} and new["env"] == {}
    assert new["updated_by"] == "carol" and new["created_by"] == "alice"
    assert new["updated_at"] > dep["updated_at"] and new["created_at"] == dep["created_at"]
    assert new["image"] == dep["image"] and new["model_uri"] == dep["model_uri"]
    history = client.get(f"{API}/{dep['id']}/history", headers=world.alice).json()
    assert [(h["version"], h["action"], h["message"]) for h in history] == [
        (2, "update", "scale up"), (1, "create", "Deployment created")
    ]
    assert history[0]["spec"]["replicas"] == 3 and history[1]["spec"]["replicas"] == 1
    one = client.get(f"{API}/{dep['id']}/history/1", headers=world.alice).json()
    HistoryEntry.model_validate(one)
    assert one == history[1]
    assert client.get(f"{API}/{dep['id']}/history/9", headers=world.alice).status_code == 404
    assert wakes == [dep["id"], dep["id"]]


def test_noop_update_makes_no_version(client: TestClient, world: World) -> None:
    dep = world.create(description="d")
    same = {"replicas": 1, "image": dep["image"], "description": "d", "update_message": "nothing"}
    resp = client.patch(f"{API}/{dep['id']}", json=same, headers=world.alice)
    assert resp.status_code == 200 and resp.json()["version"] == 1 and resp.json()["generation"] == 1
    assert resp.json()["updated_at"] == dep["updated_at"]
    assert client.patch(f"{API}/{dep['id']}", json={}, headers=world.alice).json()["version"] == 1
    assert len(client.get(f"{API}/{dep['id']}/history", headers=world.alice).json()) == 1


def test_update_clears_optional_fields(client: TestClient, world: World) -> None:
    make_secret(world.db, "regcred")
    dep = world.create(image_pull_secret="regcred", description="x")
    url = f"{API}/{dep['id']}"
    assert client.patch(url, json={"model_uri": ""}, headers=world.alice).json()["model_uri"] is None
    assert client.patch(url, json={"model_uri": " gs://b/m "}, headers=world.alice).json()["model_uri"] == "gs://b/m"
    assert client.patch(url, json={"model_uri": None}, headers=world.alice).json()["model_uri"] is None
    assert client.patch(url, json={"image_pull_secret": None}, headers=world.alice).json()["image_pull_secret"] is None
    assert client.patch(url, json={"description": None}, headers=world.alice).json()["description"] == ""
    resp = client.patch(url, json={"image_pull_secret": "missing"}, headers=world.alice)
    assert resp.status_code == 422


@pytest.mark.parametrize("field,value", [("name", "New"), ("group", "other"), ("id", "new-id")])
def test_immutable_fields(client: TestClient, world: World, field: str, value: str) -> None:
    dep = world.create()
    resp = client.patch(f"{API}/{dep['id']}", json={field: value, "replicas": 2}, headers=world.alice)
    assert resp.status_code == 422 and error_code(resp) == "IMMUTABLE_FIELD"
    assert field in resp.json()["error"]["message"]
    assert client.get(f"{API}/{dep['id']}", headers=world.alice).json()["replicas"] == 1


@pytest.mark.parametrize("patch", [{"replicas": None}, {"image": None}, {"image": "  "}, {"env": {"1X": "y"}},
                                   {"endpoint_access": "secret"}, {"metadata": None}, {"replicas": 0},
                                   {"unknown": 1}, {"stopped": True}])
def test_bad_updates(client: TestClient, world: World, patch: dict[str, Any]) -> None:
    dep = world.create()
    resp = client.patch(f"{API}/{dep['id']}", json=patch, headers=world.alice)
    assert resp.status_code == 422, resp.text
    assert client.get(f"{API}/{dep['id']}", headers=world.alice).json()["version"] == 1


def test_stop_and_start_are_idempotent_versions(client: TestClient, world: World) -> None:
    dep = world.create()
    url = f"{API}/{dep['id']}"
    stopped = client.post(f"{url}/stop", headers=world.alice).json()
    assert stopped["stopped"] is True and (stopped["version"], stopped["generation"]) == (2, 2)
    # Until the controller has seen the change, the answer shows the transition (PrimeHub fallback).
    assert stopped["status"] == "Stopping"
    again = client.post(f"{url}/stop", headers=world.alice)
    assert again.status_code == 200 and again.json()["version"] == 2
    started = client.post(f"{url}/start", headers=world.carol).json()
    assert started["stopped"] is False and started["version"] == 3 and started["updated_by"] == "carol"
    assert client.post(f"{url}/start", headers=world.alice).json()["version"] == 3
    history = client.get(f"{url}/history", headers=world.alice).json()
    assert [(h["action"], h["message"]) for h in history[:2]] == [
        ("start", "Deployment started"), ("stop", "Deployment stopped")
    ]
    assert history[1]["spec"]["stopped"] is True and history[0]["spec"]["stopped"] is False


def test_updating_a_stopped_deployment_keeps_it_stopped(client: TestClient, world: World) -> None:
    dep = world.create()
    client.post(f"{API}/{dep['id']}/stop", headers=world.alice)
    new = client.patch(f"{API}/{dep['id']}", json={"replicas": 5}, headers=world.alice).json()
    assert new["stopped"] is True and new["replicas"] == 5 and new["version"] == 3


def test_rollback_copies_an_old_spec(client: TestClient, world: World) -> None:
    dep = world.create(env={"V": "1"})
    url = f"{API}/{dep['id']}"
    client.patch(url, json={"image": "modeldeck/sklearn-server:2", "env": {"V": "2"}, "replicas": 2},
                 headers=world.alice)
    client.post(f"{url}/stop", headers=world.alice)
    resp = client.post(f"{url}/rollback", json={"version": 1}, headers=world.carol)
    assert resp.status_code == 200, resp.text
    back = resp.json()
    assert back["image"] == "modeldeck/sklearn-server:1" and back["env"] == {"V": "1"} and back["replicas"] == 1
    assert back["stopped"] is True and back["version"] == 4 and back["generation"] == 4
    top = client.get(f"{url}/history", headers=world.alice).json()[0]
    assert (top["action"], top["message"], top["created_by"]) == ("rollback", "Rolled back to version 1", "carol")
    same = client.post(f"{url}/rollback", json={"version": 1}, headers=world.alice).json()
    assert same["version"] == 4  # already that spec: nothing to do
    assert client.post(f"{url}/rollback", json={"version": 42}, headers=world.alice).status_code == 404
    assert client.post(f"{url}/rollback", json={"version": "1"}, headers=world.alice).status_code == 422


def test_history_is_pruned(client: TestClient, world: World) -> None:
    platform = client.app.state.platform  # type: ignore[attr-defined]
    platform.settings = replace(platform.settings, history_limit=3)
    dep = world.create()
    for replicas in range(2, 7):
        client.patch(f"{API}/{dep['id']}", json={"replicas": replicas}, headers=world.alice)
    versions = [h["version"] for h in client.get(f"{API}/{dep['id']}/history", headers=world.alice).json()]
    assert versions == [6, 5, 4]


# -- clients ------------------------------------------------------------------------------------


def test_clients_token_shown_once_and_stored_hashed(client: TestClient, world: World, wakes: list[str]) -> None:
    dep = world.create(endpoint_access="private")
    url = f"{API}/{dep['id']}/clients"
    resp = client.post(url, json={"name": "app_1"}, headers=world.alice)
    assert resp.status_code == 201, resp.text
    token = resp.json()["token"]
    assert resp.json()["name"] == "app_1" and token.startswith("mdc_") and len(token) > 40
    listed = client.get(url, headers=world.alice).json()
    assert [c["name"] for c in listed] == ["app_1"] and token not in json.dumps(listed)
    with world.db.read() as session:
        row = session.get(DeploymentClient, (dep["id"], "app_1"))
        assert row is not None and row.token_hash == hashlib.sha256(token.encode()).hexdigest()
    detail = client.get(f"{API}/{dep['id']}", headers=world.alice).json()
    assert detail["clients"] == ["app_1"] and detail["version"] == 2 and detail["generation"] == 2
    dup = client.post(url, json={"name": "app_1"}, headers=world.alice)
    assert dup.status_code == 409
    second = client.post(url, json={"name": "batch"}, headers=world.alice).json()["token"]
    assert second != token
    history = client.get(f"{API}/{dep['id']}/history", headers=world.alice).json()
    dump = json.dumps(history)
    assert token not in dump and second not in dump and hashlib.sha256(token.encode()).hexdigest() not in dump
    assert history[0]["action"] == "client" and history[0]["spec"]["clients"] == ["app_1", "batch"]
    assert client.delete(f"{url}/app_1", headers=world.alice).status_code == 204
    assert client.delete(f"{url}/app_1", headers=world.alice).status_code == 404
    assert [c["name"] for c in client.get(url, headers=world.alice).json()] == ["batch"]
    assert client.get(f"{API}/{dep['id']}", headers=world.alice).json()["generation"] == 4
    assert wakes.count(dep["id"]) == 4


@pytest.mark.parametrize("name", ["App", "1app", "", "a" * 64, "a b", "a.b"])
def test_client_names(client: TestClient, world: World, name: str) -> None:
    dep = world.create()
    resp = client.post(f"{API}/{dep['id']}/clients", json={"name": name}, headers=world.alice)
    assert resp.status_code == 422


# -- delete -------------------------------------------------------------------------------------


def test_delete_removes_everything(client: TestClient, world: World, wakes: list[str]) -> None:
    dep = world.create(endpoint_access="private")
    client.post(f"{API}/{dep['id']}/clients", json={"name": "c1"}, headers=world.alice)
    assert client.delete(f"{API}/{dep['id']}", headers=world.carol).status_code == 204
    assert client.get(f"{API}/{dep['id']}", headers=world.alice).status_code == 404
    assert client.delete(f"{API}/{dep['id']}", headers=world.alice).status_code == 404
    with world.db.read() as session:
        for table in (Deployment, DeploymentVersion, DeploymentClient):
            assert session.scalar(select(func.count()).select_from(table)) == 0
    assert wakes[-1] == dep["id"]
    available = client.get(f"/api/v1/deployment-ids/{dep['id']}/available", headers=world.alice).json()
    assert available["available"] is True


# -- input the store cannot hold --------------------------------------------------------------


@pytest.mark.parametrize(
    "method,path,payload",
    [
        ("GET", f"{API}?q=a%00b", None),
        ("GET", f"{API}?group=%00", None),
        ("GET", f"{API}/abc%00def", None),
        ("POST", API, body(description="nul\x00")),
        ("POST", API, body(name="nul\x00")),
        ("POST", API, body(image="img\x00:1")),
        ("POST", API, body(metadata={"k\x00": "v"})),
        ("POST", API, body(env={"K": "v\x00"})),
        ("POST", API, body(update_message="\x00")),
        ("POST", API, body(group="te\x00am")),
        ("POST", API, body(instance_type="cpu\x00")),
        ("POST", API, body(image_pull_secret="s\x00")),
        ("PATCH", f"{API}/target", {"description": "\x00"}),
        ("PATCH", f"{API}/target", {"model_uri": "gs://b/\x00"}),
        ("POST", f"{API}/target/clients", {"name": "a\x00"}),
        ("DELETE", f"{API}/target/clients/a%00", None),
    ],
)
def test_nul_characters_are_refused_not_crashed(
    client: TestClient, world: World, method: str, path: str, payload: Any
) -> None:
    """PostgreSQL cannot store NUL: it must be a 4xx on every backend, never a 500."""
    world.create(id="target")
    resp = client.request(method, path, json=payload, headers=world.alice)
    assert 400 <= resp.status_code < 500, resp.text
    with world.db.read() as session:
        assert session.scalar(select(func.count()).select_from(Deployment)) == 1
        target = session.get(Deployment, "target")
        assert target is not None and target.version == 1
