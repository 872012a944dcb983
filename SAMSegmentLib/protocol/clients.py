"""One engine shared by several parts of a GUI (the effect, each module panel): each part gets a
client that sees only the answers to its own requests, whoever polls first.

The engine is anything that takes requests and gives messages (``Engine``): the engine service's
``EngineClient`` in Slicer, an in-process ``InferenceWorker`` in tests and the CLI.

GUI thread only: clients poll from their own timers, and whichever polls drains the engine and
files every message under the client that submitted its request.
"""

from __future__ import annotations

import weakref
from collections import deque
from collections.abc import Callable
from typing import Protocol

from .messages import WorkerMessage
from .requests import Cancel, Request


class Engine(Protocol):
    def submit(self, request: Request) -> int:
        """Queue ``request``; its id, which every message answering it carries."""

    def poll(self) -> list[WorkerMessage]:
        """Every message since the last poll, in order; never blocks."""


class WorkerHub:
    def __init__(self, worker: Engine) -> None:
        self.worker = worker
        self._owners: dict[int, WorkerClient] = {}  # request id -> client, until its final message
        self._clients: weakref.WeakSet[WorkerClient] = weakref.WeakSet()

    def client(self) -> WorkerClient:
        client = WorkerClient(self)
        self._clients.add(client)
        return client

    def dispatch(self) -> None:
        """Collect, then call ``on_messages`` of each client with messages waiting: for a host that
        is woken by the engine's sockets, so answers are shown without waiting for a client's timer."""
        self.collect()
        for client in list(self._clients):
            if client.inbox and client.on_messages is not None:
                client.on_messages()

    def collect(self) -> None:
        """File every message the worker has under the client that asked (others are dropped)."""
        for message in self.worker.poll():
            owner = self._owners.get(message.request_id)
            if owner is None:
                continue
            if message.kind.final:
                del self._owners[message.request_id]
            owner.inbox.append(message)

    def submit(self, request: Request, client: WorkerClient) -> int:
        request_id = self.worker.submit(request)
        self._owners[request_id] = client
        return request_id

    def pending(self, client: WorkerClient) -> list[int]:
        return [request_id for request_id, owner in self._owners.items() if owner is client]


class WorkerClient:
    """What a GUI part needs of the worker: ``submit``, ``cancel`` and ``poll`` of its own requests."""

    def __init__(self, hub: WorkerHub) -> None:
        self.hub = hub
        self.inbox: deque[WorkerMessage] = deque()
        self.on_messages: Callable[[], None] | None = None  # called by WorkerHub.dispatch

    def submit(self, request: Request) -> int:
        return self.hub.submit(request, self)

    def cancel(self, request_id: int | None = None) -> list[int]:
        """Cancel one of this client's requests, or all of them when ``request_id`` is None (never
        another client's); the ids of the Cancel requests sent."""
        targets = self.hub.pending(self) if request_id is None else [request_id]
        return [self.submit(Cancel(target)) for target in targets if target in self.hub.pending(self)]

    def poll(self) -> list[WorkerMessage]:
        self.hub.collect()
        messages = list(self.inbox)
        self.inbox.clear()
        return messages
