"""Servers the tests run on a background thread: one way to start and stop them.

``BackgroundServer`` serves any ASGI app (the receiver, an Event Hook endpoint, a fake
upstream, the fault proxy) with uvicorn on a free loopback port, waits until it listens,
and stops it, as a context manager.
"""

from __future__ import annotations

import socket
import threading
from typing import Literal

import uvicorn
from scimflow.services.process import wait_until
from starlette.types import ASGIApp

__all__ = ["BackgroundServer"]


class BackgroundServer:
    """uvicorn serving an ASGI app on a background thread, on a free loopback port.

    The listening socket is bound (to a free port, or the one asked for) before uvicorn
    starts and handed to it, so no other process can take the port in between.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        name: str = "uvicorn",
        lifespan: Literal["on", "off"] = "off",
        port: int = 0,
        start_timeout: float = 15.0,
    ) -> None:
        self.host = host
        self.name = name
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                log_level="warning",
                log_config=None,  # leave the process's logging set-up alone
                access_log=False,
                lifespan=lifespan,
                proxy_headers=False,
                server_header=False,
                date_header=False,
                timeout_graceful_shutdown=5,
            )
        )
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self._bind_port = port  # 0: a free one
        self.start_timeout = start_timeout

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError(f"{self.name} is not running")
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            raise RuntimeError(f"{self.name} was already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._bind_port))
        self._sock = sock
        self.port = int(sock.getsockname()[1])
        self._thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, name=self.name, daemon=True
        )
        self._thread.start()
        started = wait_until(
            lambda: bool(self.server.started),
            timeout=self.start_timeout if timeout is None else timeout,
            interval=0.01,
            alive=self._thread.is_alive,
        )
        if not started:
            self.stop()
            raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
            if self._thread.is_alive():
                self.server.force_exit = True
                self._thread.join(timeout=5)
        if self._sock is not None:
            self._sock.close()

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
