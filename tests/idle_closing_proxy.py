"""A loopback TCP proxy that closes keep-alive connections left idle, as reverse proxies and
servers do between requests (nginx's keepalive_timeout, Ray Serve's keep_alive_timeout_s), so
tests can see what a client does when that happens. Never while a request waits for its answer:
a connection counts as idle only once the server's last bytes (an answer) went out and nothing
followed for ``idle_s``. ``retarget`` plays a load balancer whose replica was replaced."""

from __future__ import annotations

import selectors
import socket
import threading
import time


class IdleClosingProxy:
    def __init__(self, target_port: int, idle_s: float) -> None:
        self.target_port, self.idle_s = target_port, idle_s
        self.closed_idle = 0  # connections closed for being idle
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port = self._listener.getsockname()[1]
        self._stop = threading.Event()
        self._drop_open = threading.Event()
        self._thread = threading.Thread(target=self._run, name="idle-closing proxy", daemon=True)
        self._thread.start()

    def retarget(self, port: int) -> None:
        """Send every connection from now on to ``port``, dropping those open (as a load balancer
        does when the replica behind it dies or is scaled away)."""
        self.target_port = port
        self._drop_open.set()
        deadline = time.monotonic() + 5
        while self._drop_open.is_set() and time.monotonic() < deadline:  # the proxy's thread drops them
            time.sleep(0.005)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._listener.close()

    def _run(self) -> None:
        selector = selectors.DefaultSelector()
        selector.register(self._listener, selectors.EVENT_READ)
        # client socket -> [server socket, time of the last bytes, whether they were the server's]
        pairs: dict[socket.socket, list] = {}
        peers: dict[socket.socket, socket.socket] = {}
        while not self._stop.is_set():
            for key, _events in selector.select(timeout=0.02):
                if key.fileobj is self._listener:
                    self._accept(selector, pairs, peers)
                    continue
                source = key.fileobj
                try:
                    data = source.recv(1 << 20)
                except OSError:
                    data = b""
                client = source if source in pairs else peers.get(source)
                if client is None:
                    continue
                if not data:
                    self._drop(selector, pairs, peers, client)
                    continue
                peers[source].sendall(data)
                pairs[client][1:] = [time.monotonic(), source is not client]
            if self._drop_open.is_set():
                self._drop_open.clear()
                for client in list(pairs):
                    self._drop(selector, pairs, peers, client)
            now = time.monotonic()
            for client, (_server, last, answered) in list(pairs.items()):
                if answered and now - last > self.idle_s:
                    self.closed_idle += 1
                    self._drop(selector, pairs, peers, client)
        for client in list(pairs):
            self._drop(selector, pairs, peers, client)
        selector.close()

    def _accept(self, selector: selectors.BaseSelector, pairs: dict, peers: dict) -> None:
        client, _address = self._listener.accept()
        try:
            server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
        except OSError:
            client.close()
            return
        for end in (client, server):
            end.setblocking(True)
            end.settimeout(5)
            selector.register(end, selectors.EVENT_READ)
        pairs[client] = [server, time.monotonic(), False]
        peers[client], peers[server] = server, client

    def _drop(self, selector: selectors.BaseSelector, pairs: dict, peers: dict, client: socket.socket) -> None:
        server = pairs.pop(client)[0]
        for end in (client, server):
            peers.pop(end, None)
            selector.unregister(end)
            end.close()
