"""Run the API with uvicorn: in the foreground (``wattwise serve``) or in a background thread.

The thread form serves tests, benchmarks and the controller when it embeds the API.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from wattwise.errors import ConfigError

logger = logging.getLogger(__name__)


def uvicorn_config(app: FastAPI, host: str, port: int, *, access_log: bool = False) -> uvicorn.Config:
    """A uvicorn config for the app (the access log shows paths only, never headers)."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        access_log=access_log,
        lifespan="on",
        timeout_graceful_shutdown=2,
        ws="none",
    )


class ServerThread:
    """uvicorn in a daemon thread; a context manager that waits until it accepts requests."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 8640, start_timeout_s: float = 10.0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.start_timeout_s = start_timeout_s
        self.server = uvicorn.Server(uvicorn_config(app, host, port))
        self._thread = threading.Thread(target=self.server.run, name=f"api-{port}", daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the running server."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> ServerThread:
        """Start and wait until the server is up.

        Raises:
            ConfigError: The server did not start in time (port taken, app failed to start).
        """
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"API server on {self.url} did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        """Ask uvicorn to exit and wait for the thread."""
        self.server.should_exit = True
        self._thread.join(timeout=10.0)

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
