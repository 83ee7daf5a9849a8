"""Run the emulator: in this process (a thread, for tests) or as ``okta-emulator serve``."""

from __future__ import annotations

import threading

import uvicorn

from scimflow.okta.emulator.app import EmulatorState, build_app
from scimflow.okta.emulator.directory import Directory
from scimflow.okta.emulator.ratelimit import ENTERPRISE_LIMITS, RateLimiter
from scimflow.services.process import wait_until

__all__ = ["EmulatorServer", "make_state"]


def make_state(
    *,
    users: int,
    groups: int,
    seed: int,
    token: str,
    port: int,
    host: str = "127.0.0.1",
    time_scale: float = 1.0,
    logs_limit: int | None = None,
) -> EmulatorState:
    directory = Directory(org_url=f"http://{host}:{port}", seed=seed)
    directory.seed_org(users, groups)
    limits = dict(ENTERPRISE_LIMITS)
    if logs_limit is not None:
        limits["logs"] = logs_limit
    return EmulatorState(
        directory, token=token, limiter=RateLimiter(limits=limits, time_scale=time_scale)
    )


class EmulatorServer:
    """uvicorn serving one emulator state on a background thread."""

    def __init__(self, state: EmulatorState, *, host: str = "127.0.0.1", port: int) -> None:
        self.state = state
        self.url = f"http://{host}:{port}"
        config = uvicorn.Config(
            build_app(state),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="okta-emulator", daemon=True)

    def __enter__(self) -> EmulatorServer:
        self.thread.start()
        started = wait_until(
            lambda: bool(self.server.started),
            timeout=15,
            interval=0.05,
            alive=self.thread.is_alive,
        )
        if not started:
            raise RuntimeError("the Okta emulator did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.state.churn is not None:
            self.state.churn.stop()
        self.state.hooks.stop()
        self.server.should_exit = True
        self.thread.join(timeout=10)
