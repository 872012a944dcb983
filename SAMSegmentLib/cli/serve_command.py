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
    from ..service.engine import EngineService

logger = logging.getLogger(__name__)
SWITCH_INTERVAL_S = 0.001


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the engine service (what the Slicer extension talks to)",
        description=(
            "Serve the engine over HTTP. Every request must carry the token, taken from the "
            "SAMSEGMENT_SERVER_TOKEN environment variable or --token-file (never the command line). "
            "On a loopback address without a token, one is made up and printed."
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
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..service.engine import EngineService, ServiceSettings

    settings = ServiceSettings(max_sessions=args.max_sessions, idle_session_s=args.idle_timeout)
    return serve(args, EngineService(settings))


def serve(args: argparse.Namespace, engine: EngineService) -> int:
    """Serve ``engine`` as ``args`` say until interrupted (or, with --exit-with-parent, orphaned)."""
    from ..service.http_server import HttpEngineServer
    from ..service.launcher import TOKEN_ENVIRONMENT

    token = _token(args, TOKEN_ENVIRONMENT)
    # The inference thread runs Python between its ONNX Runtime / torch calls; a request's
    # thread waiting for the GIL would wait up to the switch interval (5 ms by default) each time.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        server = HttpEngineServer((args.host, args.port), engine, token, args.max_upload_mb << 20)
    except OSError as error:
        raise SAMSegmentError(f"Cannot listen on {args.host}:{args.port}: {error.strerror or error}") from error
    if args.exit_with_parent:
        threading.Thread(target=_exit_when_stdin_closes, name="parent watch", daemon=True).start()
    address = {"host": args.host, "port": server.port, "pid": os.getpid()}
    if args.ready_file is not None:
        write_text(args.ready_file, json.dumps(address))  # readers never see half a file
    print(f"SAM engine listening on {args.host}:{server.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        engine.close()
    return 0


def _token(args: argparse.Namespace, variable: str) -> str:
    token = os.environ.get(variable, "")
    if args.token_file is not None:
        try:
            token = args.token_file.read_text().strip()
        except OSError as error:
            raise SAMSegmentError(f"Cannot read the token file {args.token_file}: {error.strerror}") from error
    if token:
        return token
    if not _is_loopback(args.host):
        raise SAMSegmentError(
            f"Refusing to listen on {args.host} without a token: set {variable} or pass --token-file."
        )
    token = secrets.token_urlsafe(32)
    print(f"No token was given; this session's token is: {token}", flush=True)
    return token


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
