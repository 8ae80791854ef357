from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _server(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="modeldeck server", description="Run the modeldeck platform.")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--config", type=Path, help="TOML settings file")
    parser.add_argument("--runtime", choices=["local", "fake"])
    args = parser.parse_args(argv)

    import uvicorn

    from modeldeck.app import create_app
    from modeldeck.settings import Settings

    settings = Settings.load(
        config_file=args.config, host=args.host, port=args.port, data_dir=args.data_dir, runtime=args.runtime
    )
    app = create_app(settings)
    print(f"modeldeck: serving on {settings.public_base_url} (data dir {settings.data_dir})", flush=True)
    from modeldeck.gateway.server import SERVER_OPTIONS

    uvicorn.run(app, host=settings.host, port=settings.port, **SERVER_OPTIONS)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print("usage: modeldeck {server,model-server,...} [options]")
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "server":
        return _server(rest)
    if command == "model-server":
        from modeldeck.serving.cli import main as model_server_main

        return model_server_main(rest)
    from modeldeck.cli.client_commands import run_client_command

    return run_client_command(command, rest)
