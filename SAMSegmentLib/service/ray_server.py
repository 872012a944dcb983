"""The engine service on Ray Serve: ``samsegment serve --ray``, one department server for many
Slicer clients, same protocol as the single-process service (``routes``).

Two deployments:

- ``EngineReplica``: an ``EngineService`` per replica (the models, the volumes, their
  embeddings), placed on a GPU or a share of one, scaled between a minimum and a maximum.
- ``Ingress``: the HTTP entry. It checks every request (``routes.check_request``: token,
  protocol, route, size) before reading its body, then hands it to the replica that holds the
  request's session.

Sessions are stateful, so every request of a session must reach the replica that opened it. Ray
Serve's model multiplexing does this routing: the session id is the "model id", each replica
reports the session ids it holds and the router sends a request to the replica holding its id.
A new session goes where Serve's router sends unkeyed requests: the less busy of two replicas.
A replica asked for a session it does not hold never makes an empty one: it answers "not here".
That happens while the router has not yet heard of a new session (it hears within a few tenths
of a second), so the ingress tries again for ``_ROUTING_SETTLE_S``; after that the session is
lost (its replica died or was scaled away) and the client gets 404 ``session_lost``, upon which
it opens a new session and sends its volume again.
"""

from __future__ import annotations

import argparse
import asyncio
import contextvars
import dataclasses
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any

from ..errors import SAMSegmentError
from ..protocol.answers import SESSION_LOST
from .engine import EngineService, ServiceSettings, SessionLostError, WorkerFactory, default_worker, new_session_id
from .routes import (
    DEFAULT_MAX_UPLOAD_BYTES,
    RefusedError,
    Reply,
    Route,
    RouteKind,
    Tokens,
    check_request,
    dispatch,
    too_large,
)

logger = logging.getLogger(__name__)

APP_NAME = "samsegment"
_NOT_HERE = "not_here"  # a replica's answer for a session it does not hold
# The router learns a new session's replica within a few tenths of a second, and falls back to
# other replicas after 1-2 s (RAY_SERVE_MULTIPLEXED_MODEL_ID_MATCHING_TIMEOUT_S).
_ROUTING_SETTLE_S = 3.0
_ROUTING_RETRY_S = 0.1
# Each client holds a message poll open almost all the time: a replica takes many requests at
# once (Serve would otherwise send a busy session's requests to a replica that lacks it).
_MAX_ONGOING_REQUESTS = 1000
# Ray Serve restarts its HTTP proxy when the proxy is not ready within 5 s of starting (its
# RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S), and serve.start then fails: seen on a busy 2-core machine
# (2026-11-30, tests/service/test_ray_cli.py). A cluster this process starts allows this long; an
# administrator's own setting wins.
_PROXY_READY_TIMEOUT_S = 60.0
# What a session load is for, in the request's context: the id being opened, and who opens it.
_opening: contextvars.ContextVar[str | None] = contextvars.ContextVar("opening", default=None)
_owner: contextvars.ContextVar[str] = contextvars.ContextVar("owner", default="")


class _SessionSlot:
    """What Serve's multiplexer caches for a session: closing it (Serve's eviction, LRU beyond
    ``max_num_models_per_replica``) closes the session."""

    def __init__(self, engine: EngineService, session_id: str) -> None:
        self.engine, self.session_id = engine, session_id

    def __del__(self) -> None:
        self.engine.close_session(self.session_id)


class EngineReplica:
    """One replica's engine service; its methods are called by the ingress through a handle."""

    def __init__(self, settings: ServiceSettings, worker_factory: WorkerFactory) -> None:
        from ray import serve

        self.engine = EngineService(settings, worker_factory)
        self.engine.expire_periodically()
        # Message polls block a thread each for up to max_wait_s: room for all of them and more.
        self._threads = ThreadPoolExecutor(4 * settings.max_sessions + 4, thread_name_prefix="session")

        async def load_slot(session_id: str) -> _SessionSlot:  # a function: Serve keeps its cache on it
            if _opening.get() != session_id:  # never an empty session in place of a lost one
                raise SessionLostError("This server replica does not hold the session.")
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._threads, self.engine.open_session, _owner.get(), session_id)
            return _SessionSlot(self.engine, session_id)

        # Room beyond max_sessions for the slots of closed or expired sessions, which Serve keeps
        # until they are the least recently used (live sessions poll every few seconds, so they
        # never are); the engine itself refuses a session too many.
        self._slot = serve.multiplexed(max_num_models_per_replica=2 * settings.max_sessions)(load_slot)

    async def handle(self, route: Route, body: bytes) -> Reply:
        from ray import serve

        loop = asyncio.get_running_loop()
        if route.kind is RouteKind.HEALTH:
            reply = await loop.run_in_executor(self._threads, dispatch, self.engine, route, body)
            replica = serve.get_replica_context().replica_id.to_full_id_str()
            return Reply.json(reply.status, {**json.loads(reply.body), "replica": replica})
        session_id = route.session if route.kind is RouteKind.OPEN else serve.get_multiplexed_model_id()
        route = dataclasses.replace(route, session=session_id)
        opening = _opening.set(session_id if route.kind is RouteKind.OPEN else None)
        owner = _owner.set(route.owner)
        try:
            await self._slot(session_id)
        except SessionLostError as error:
            return dataclasses.replace(Reply.error(HTTPStatus.NOT_FOUND, SESSION_LOST, str(error)), code=_NOT_HERE)
        except SAMSegmentError as error:  # full: the engine refused to open another
            return Reply.error(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", str(error))
        finally:
            _opening.reset(opening)
            _owner.reset(owner)
        if route.kind is RouteKind.OPEN:
            return Reply.json(HTTPStatus.OK, {"session": session_id})
        return await loop.run_in_executor(self._threads, dispatch, self.engine, route, body)


class Ingress:
    """The HTTP entry: checks, then forwards to the replica holding the session."""

    def __init__(self, engines: Any, tokens: Tokens, max_upload_bytes: int) -> None:
        self.engines = engines  # a DeploymentHandle to EngineReplica
        self.tokens = tokens
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, request: Any) -> Any:
        from starlette.requests import ClientDisconnect
        from starlette.responses import Response

        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        try:
            route, _length = check_request(request.method, target, request.headers, self.tokens, self.max_upload_bytes)
            body = await self._body(request) if route.kind is RouteKind.REQUESTS else b""
            reply = await self._forward(route, body)
        except RefusedError as refused:
            reply = refused.reply
        except ClientDisconnect:
            reply = Reply.error(HTTPStatus.BAD_REQUEST, "bad_request", "The client went away during its upload.")
        return Response(reply.body, reply.status, media_type=reply.content_type)

    async def _body(self, request: Any) -> bytes:
        body = bytearray()
        async for chunk in request.stream():  # also bounds uploads that name no length
            body += chunk
            if len(body) > self.max_upload_bytes:
                raise too_large(len(body), self.max_upload_bytes)
        return bytes(body)

    async def _forward(self, route: Route, body: bytes) -> Reply:
        if route.kind is RouteKind.HEALTH:
            return await self._ask(self.engines, route, body)
        if route.kind is RouteKind.OPEN:
            # Routed by load, not by session: the replica with the fewest requests open (each
            # connected client holds about one) gets the new session.
            return await self._ask(self.engines, dataclasses.replace(route, session=new_session_id()), body)
        engines = self.engines.options(multiplexed_model_id=route.session)
        deadline = time.monotonic() + _ROUTING_SETTLE_S
        while True:
            reply = await self._ask(engines, route, body)
            if reply.code != _NOT_HERE:
                return reply
            if time.monotonic() > deadline:
                return dataclasses.replace(reply, code=SESSION_LOST)
            await asyncio.sleep(_ROUTING_RETRY_S)

    @staticmethod
    async def _ask(engines: Any, route: Route, body: bytes) -> Reply:
        from ray.exceptions import RayActorError, RayError, RayTaskError

        try:
            return await engines.handle.remote(route, body)
        except RayActorError:  # the replica died while answering
            return Reply.error(HTTPStatus.NOT_FOUND, SESSION_LOST, "The server replica holding this session stopped.")
        except RayTaskError as error:
            logger.error("An engine replica failed on %s: %s", route.kind.value, error)
            return Reply.error(HTTPStatus.INTERNAL_SERVER_ERROR, "bug", f"The engine failed: {error.cause!r}")
        except RayError as error:
            logger.warning("Ray could not reach an engine replica: %s", error)
            return Reply.error(HTTPStatus.SERVICE_UNAVAILABLE, "unavailable", f"The server could not answer: {error}")


def build_app(
    settings: ServiceSettings,
    tokens: Tokens,
    worker_factory: WorkerFactory = default_worker,
    min_replicas: int = 1,
    max_replicas: int = 1,
    cpus_per_replica: float = 1.0,
    gpus_per_replica: float = 0.0,
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
) -> Any:
    """The Serve application: the ingress bound to the engine replicas."""
    from ray import serve

    if not 1 <= min_replicas <= max_replicas:
        raise SAMSegmentError("Replicas: need 1 <= --min-replicas <= --max-replicas.")
    scaling: dict[str, Any]
    if min_replicas == max_replicas:
        scaling = {"num_replicas": min_replicas}
    else:
        # A connected client keeps about one request open (its message poll): scale out when a
        # replica serves half the sessions it could hold.
        target = max(1, settings.max_sessions // 2)
        scaling = {
            "autoscaling_config": {
                "min_replicas": min_replicas,
                "max_replicas": max_replicas,
                "target_ongoing_requests": target,
            }
        }
    engine = serve.deployment(
        name="EngineReplica",
        max_ongoing_requests=_MAX_ONGOING_REQUESTS,
        ray_actor_options={"num_cpus": cpus_per_replica, "num_gpus": gpus_per_replica},
        **scaling,
    )(EngineReplica)
    ingress = serve.deployment(
        name="Ingress", max_ongoing_requests=_MAX_ONGOING_REQUESTS, ray_actor_options={"num_cpus": 0}
    )(Ingress)
    return ingress.bind(engine.bind(settings, worker_factory), tokens, max_upload_bytes)


def start(
    app: Any, host: str = "127.0.0.1", port: int = 8470, address: str | None = None, num_cpus: int | None = None
) -> int:
    """Connect to (``address``) or start a Ray cluster, and serve ``app`` on ``host:port``; the port."""
    from ray import serve

    _init_ray(address, num_cpus)
    port = port or _free_port(host)
    serve.start(http_options={"host": host, "port": port})
    serve.run(app, name=APP_NAME, route_prefix="/")
    return port


def _init_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Connect to (``address``) or start a Ray cluster, unless this process has one already."""
    import ray

    if not ray.is_initialized():
        # Ray's processes read it from the environment they are started with.
        os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", f"{_PROXY_READY_TIMEOUT_S:g}")
        ray.init(address=address, num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING)


def stop() -> None:
    import ray
    from ray import serve

    serve.shutdown()
    ray.shutdown()


def serve_on_ray(args: argparse.Namespace, settings: ServiceSettings, tokens: Tokens) -> int:
    """``samsegment serve --ray``: deploy, say where, serve until interrupted."""
    from ..cli.serve_command import announce

    try:
        import ray  # noqa: F401 - only to say clearly what is missing
    except ImportError:
        raise SAMSegmentError("--ray needs Ray Serve: pip install 'samsegment[server]' (or 'ray[serve]').") from None
    port = _start_for_cli(args, settings, tokens)
    announce(args, port)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        while not stopping.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    return 0


def _start_for_cli(args: argparse.Namespace, settings: ServiceSettings, tokens: Tokens) -> int:
    import ray

    _init_ray(args.address)
    gpus = args.gpus_per_replica
    if gpus is None:  # a whole GPU each where there are GPUs
        gpus = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    app = build_app(
        settings,
        tokens,
        min_replicas=args.min_replicas,
        max_replicas=args.max_replicas,
        cpus_per_replica=args.cpus_per_replica,
        gpus_per_replica=gpus,
        max_upload_bytes=args.max_upload_mb << 20,
    )
    print(
        f"Ray Serve: {args.min_replicas}-{args.max_replicas} engine replicas, "
        f"{args.cpus_per_replica:g} CPU and {gpus:g} GPU each",
        file=sys.stderr,
        flush=True,
    )
    return start(app, args.host, args.port)


def _free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
