"""Where the engine service is: an address (``Endpoint``), and what starts it or names it
(``EndpointSource``: a process the client starts, ``service.launcher``, or a server someone else
runs, ``FixedEndpoint``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    token: str = field(repr=False)  # never in logs or tracebacks
    path: str = ""  # where the routes start behind a proxy ("/samsegment"), no trailing slash

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"

    @classmethod
    def from_url(cls, url: str, token: str) -> Endpoint:
        """The engine service at ``url`` (``http://host[:port][/path]``); ValueError says what is wrong."""
        text = url.strip()
        if "://" not in text:
            text = "http://" + text
        try:
            parts = urlsplit(text)
            port = parts.port or 80
        except ValueError as error:
            raise ValueError(f"{url!r} is not a server address: {error}.") from None
        if parts.scheme != "http":
            raise ValueError(
                f"{url!r}: only http:// addresses are supported; reach an https server through a local tunnel or proxy."
            )
        if not parts.hostname:
            raise ValueError(f"{url!r} names no server; write it as http://host:port.")
        return cls(parts.hostname, port, token, parts.path.rstrip("/"))


class EndpointSource(Protocol):
    """Where the engine is: a process this client starts (``service.launcher``) or a server."""

    def start(self) -> None:
        """Start the engine if it is not running; returns at once."""

    def endpoint(self) -> Endpoint | None:
        """Where to reach it, None while it is starting."""

    def failure(self) -> str | None:
        """Why it is not running or cannot start, None while it is (or may soon be) fine."""

    def stop(self) -> None:
        """Stop it if this client started it."""


@dataclass(frozen=True)
class FixedEndpoint:
    """An engine someone else runs (a department's server): nothing to start or stop."""

    address: Endpoint

    def start(self) -> None:
        pass

    def endpoint(self) -> Endpoint | None:
        return self.address

    def failure(self) -> str | None:
        return None

    def stop(self) -> None:
        pass
