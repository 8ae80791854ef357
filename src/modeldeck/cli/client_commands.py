"""`modeldeck <resource> <verb>`: API commands for people (tables) and scripts (--json)."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path
from typing import Any

from modeldeck.client import ApiError, Client

CONFIG_PATH = Path("~/.config/modeldeck/credentials.json")
LIST_COLUMNS = ("id", "name", "group", "status", "replicas", "available_replicas", "image", "updated_at")


def _config_path() -> Path:
    return Path(os.environ.get("MODELDECK_CONFIG", str(CONFIG_PATH))).expanduser()


def _load_config() -> dict[str, str]:
    path = _config_path()
    return json.loads(path.read_text()) if path.exists() else {}


def _client(args: argparse.Namespace) -> Client:
    config = _load_config()
    url = args.url or os.environ.get("MODELDECK_URL") or config.get("url") or "http://127.0.0.1:8080"
    token = args.token or os.environ.get("MODELDECK_TOKEN") or config.get("token")
    return Client(url, token)


def _print(value: Any, as_json: bool, columns: tuple[str, ...] | None = None) -> None:
    if as_json or columns is None or not isinstance(value, list):
        if isinstance(value, str):
            sys.stdout.write(value)
        else:
            print(json.dumps(value, indent=2, default=str))
        return
    rows = [[str(item.get(c, "")) for c in columns] for item in value]
    widths = [max([len(c)] + [len(r[i]) for r in rows]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def _spec_from(args: argparse.Namespace) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if getattr(args, "file", None):
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        spec.update(json.loads(text))
    for field in ("name", "id", "group", "instance_type", "replicas", "image", "model_uri",
                  "description", "endpoint_access", "update_message"):
        value = getattr(args, field, None)
        if value is not None:
            spec[field] = value
    for pair in getattr(args, "env", None) or []:
        key, _, value = pair.partition("=")
        spec.setdefault("env", {})[key] = value
    return spec


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modeldeck")
    parser.add_argument("--url", help="platform URL (env MODELDECK_URL)")
    parser.add_argument("--token", help="API token (env MODELDECK_TOKEN)")
    parser.add_argument("--json", action="store_true", help="JSON output for scripts")
    sub = parser.add_subparsers(dest="resource", required=True)

    login = sub.add_parser("login", help="log in and store a session token")
    login.add_argument("username")

    deps = sub.add_parser("deployments", help="manage deployments").add_subparsers(dest="verb", required=True)
    lst = deps.add_parser("list")
    lst.add_argument("--group")
    lst.add_argument("--status")
    lst.add_argument("--q")
    lst.add_argument("--mine", action="store_true")
    for verb in ("get", "stop", "start", "delete", "history"):
        deps.add_parser(verb).add_argument("id")
    for verb in ("create", "update", "apply"):
        p = deps.add_parser(verb)
        if verb != "create":
            p.add_argument("id", nargs="?" if verb == "apply" else None)
        p.add_argument("-f", "--file", help="JSON spec file, or - for stdin")
        for flag in ("name", "group", "instance-type", "image", "model-uri", "description",
                     "endpoint-access", "update-message"):
            p.add_argument(f"--{flag}")
        if verb == "create":
            p.add_argument("--id")
        p.add_argument("--replicas", type=int)
        p.add_argument("--env", action="append", help="NAME=value (repeatable)")
    rollback = deps.add_parser("rollback")
    rollback.add_argument("id")
    rollback.add_argument("version", type=int)
    logs = deps.add_parser("logs")
    logs.add_argument("id")
    logs.add_argument("--replica")
    logs.add_argument("--tail", type=int, default=100)
    logs.add_argument("--follow", "-f", action="store_true")
    wait = deps.add_parser("wait")
    wait.add_argument("id")
    wait.add_argument("--timeout", type=float, default=600.0)
    return parser


def run_client_command(command: str, rest: list[str]) -> int:
    args = _parser().parse_args([command, *rest])
    try:
        return _run(args)
    except ApiError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    client = _client(args)
    if args.resource == "login":
        token = client.login(args.username, getpass.getpass("password: "))
        path = _config_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(json.dumps({"url": str(client._http.base_url).removesuffix("/api/v1/"), "token": token}))
        print(f"logged in; token stored in {path}")
        return 0
    verb, as_json = args.verb, args.json
    if verb == "list":
        items = client.list_deployments(group=args.group, status=args.status, q=args.q,
                                        mine="true" if args.mine else None)
        _print([{**i, "group": i.get("group")} for i in items], as_json, LIST_COLUMNS)
    elif verb == "get":
        _print(client.get_deployment(args.id), True)
    elif verb == "create":
        _print(client.create_deployment(**_spec_from(args)), True)
    elif verb == "update":
        _print(client.update_deployment(args.id, **_spec_from(args)), True)
    elif verb == "apply":
        spec = _spec_from(args)
        target = args.id or spec.get("id")
        try:
            existing = client.get_deployment(target) if target else None
        except ApiError as exc:
            if exc.status != 404:
                raise
            existing = None
        if existing is None:
            _print(client.create_deployment(**spec), True)
        else:
            for immutable in ("id", "name", "group"):
                spec.pop(immutable, None)
            _print(client.update_deployment(existing["id"], **spec), True)
    elif verb in ("stop", "start"):
        _print(client.action(args.id, verb), True)
    elif verb == "rollback":
        _print(client.action(args.id, "rollback", {"version": args.version}), True)
    elif verb == "delete":
        client.delete_deployment(args.id)
        print(f"deleted {args.id}")
    elif verb == "history":
        _print(client.history(args.id), as_json, ("version", "action", "message", "created_by", "created_at"))
    elif verb == "logs":
        if args.follow:
            for line in client.follow_logs(args.id, replica=args.replica, tail=args.tail):
                print(line, flush=True)
        else:
            sys.stdout.write(client.logs(args.id, replica=args.replica, tail=args.tail))
    elif verb == "wait":
        dep = client.wait(args.id, timeout=args.timeout)
        _print(dep, True) if as_json else print(f"{dep['id']}: {dep['status']} ({dep['reason']}) {dep['message']}")
        return 0 if dep["status"] in ("Deployed", "Stopped") else 1
    return 0
