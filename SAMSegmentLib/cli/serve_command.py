"""``samsegment serve``: the engine service, for Slicer on this computer or a department's server."""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import secrets
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from ..atomic import write_text
from ..errors import SAMSegmentError

if TYPE_CHECKING:
    from ..service.engine import EngineService, ServiceSettings
    from ..service.routes import Tokens

logger = logging.getLogger(__name__)
SWITCH_INTERVAL_S = 0.001


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the engine service (what the Slicer extension talks to)",
        description=(
            "Serve the engine over HTTP. Every request must carry a token, taken from --token-file "
            "(one per line, # comments) or the SAMSEGMENT_SERVER_TOKEN environment variable (never the "
            "command line). On a loopback address without a token, one is made up and printed. "
            "With --ray, the same service runs on Ray Serve: model replicas placed on GPUs, "
            "scaled between --min-replicas and --max-replicas with load."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8470, help="port (0: any free port)")
    parser.add_argument("--token-file", type=Path, help="file holding the token")
    parser.add_argument("--ready-file", type=Path, help="write the address here (JSON) once listening")
    parser.add_argument("--exit-with-parent", action="store_true", help="exit when standard input closes")
    parser.add_argument("--max-sessions", type=int, default=8, help="sessions served at once (default 8)")
    parser.add_argument("--idle-timeout", type=float, default=3600.0, help="close sessions idle this long (s)")
    parser.add_argument("--max-upload-mb", type=int, default=4096, help="largest request accepted (MB)")
    parser.add_argument(
        "--embedding-budget-mb", type=int, default=8192, help="embeddings of all sessions of a replica (MB)"
    )
    ray = parser.add_argument_group("department server on Ray Serve")
    ray.add_argument("--ray", action="store_true", help="serve on Ray Serve (needs the 'server' extra)")
    ray.add_argument("--address", help="an existing Ray cluster (e.g. ray://head:10001); default: a local one")
    ray.add_argument("--min-replicas", type=int, default=1, help="model replicas kept running (default 1)")
    ray.add_argument("--max-replicas", type=int, default=1, help="model replicas under load (default 1)")
    ray.add_argument(
        "--gpus-per-replica",
        type=float,
        help="GPU share of a replica, e.g. 0.25 for a small model (default: 1 where the cluster has GPUs, else 0)",
    )
    ray.add_argument("--cpus-per-replica", type=float, default=1.0, help="CPU cores reserved per replica")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..service.engine import EngineService

    settings = service_settings(args)
    if args.ray:
        from ..service.ray_server import serve_on_ray

        return serve_on_ray(args, settings, service_tokens(args))
    return serve(args, EngineService(settings))


def service_settings(args: argparse.Namespace) -> ServiceSettings:
    from ..service.engine import ServiceSettings

    return ServiceSettings(
        max_sessions=args.max_sessions,
        idle_session_s=args.idle_timeout,
        embedding_budget_bytes=args.embedding_budget_mb << 20,
    )


def serve(args: argparse.Namespace, engine: EngineService) -> int:
    """Serve ``engine`` as ``args`` say until interrupted (or, with --exit-with-parent, orphaned)."""
    from ..service.http_server import HttpEngineServer

    tokens = service_tokens(args)
    # The inference thread runs Python between its ONNX Runtime / torch calls; a request's
    # thread waiting for the GIL would wait up to the switch interval (5 ms by default) each time.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        server = HttpEngineServer((args.host, args.port), engine, tokens, args.max_upload_mb << 20)
    except OSError as error:
        raise SAMSegmentError(f"Cannot listen on {args.host}:{args.port}: {error.strerror or error}") from error
    engine.expire_periodically()
    announce(args, server.port)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        engine.close()
    return 0


def announce(args: argparse.Namespace, port: int) -> None:
    """Say where the service listens: on stdout, and in --ready-file for whoever started it."""
    if args.exit_with_parent:
        threading.Thread(target=_exit_when_stdin_closes, name="parent watch", daemon=True).start()
    address = {"host": args.host, "port": port, "pid": os.getpid()}
    if args.ready_file is not None:
        write_text(args.ready_file, json.dumps(address))  # readers never see half a file
    print(f"SAM engine listening on {args.host}:{port}", flush=True)


def service_tokens(args: argparse.Namespace) -> Tokens:
    """The tokens of --token-file or the environment; on loopback only, a fresh one if neither."""
    from ..service.launcher import TOKEN_ENVIRONMENT
    from ..service.routes import Tokens

    tokens = Tokens.configured(args.token_file)
    if tokens is not None:
        return tokens
    if not _is_loopback(args.host):
        raise SAMSegmentError(
            f"Refusing to listen on {args.host} without a token: set {TOKEN_ENVIRONMENT} or pass --token-file."
        )
    token = secrets.token_urlsafe(32)
    print(f"No token was given; this session's token is: {token}", flush=True)
    return Tokens([token])


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _exit_when_stdin_closes() -> None:
    """The parent (Slicer) holds our standard input: when it ends, so do we, at once."""
    try:
        while sys.stdin.buffer.read(1 << 16):
            pass
    finally:
        logger.info("The parent process ended: stopping the engine.")
        os._exit(0)
