"""The emulator's own endpoints: ``/healthz`` (no token), and ``/emulator/*`` to point
the Event Hook somewhere, drive churn, run mutations at once and inject faults. They
need the API token but are neither rate-limited nor subject to faults."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scimflow.okta.emulator._http import ApiGuard, read_body
from scimflow.okta.emulator.directory import EmulatorError
from scimflow.okta.emulator.hooks import HookSettings
from scimflow.okta.emulator.state import EmulatorState, Fault

__all__ = ["EmulatorControls"]


class EmulatorControls:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def routes(self, guard: ApiGuard) -> list[Route]:
        return [
            Route("/healthz", self.healthz),
            Route("/emulator/hooks", guard(self.hooks_config, limited=False), methods=["POST"]),
            Route("/emulator/hooks/stats", guard(self.hooks_stats, limited=False), methods=["GET"]),
            Route("/emulator/churn", guard(self.churn, limited=False), methods=["POST"]),
            Route("/emulator/churn", guard(self.churn_stop, limited=False), methods=["DELETE"]),
            Route("/emulator/faults", guard(self.faults, limited=False), methods=["POST"]),
            Route("/emulator/mutate", guard(self.mutate, limited=False), methods=["POST"]),
        ]

    async def healthz(self, _request: Request) -> Response:
        d = self.state.directory
        return JSONResponse(
            {
                "status": "ok",
                "users": len(d.users),
                "groups": len(d.groups),
                "rate_limited": self.state.limiter.refused,  # 429s answered so far
            }
        )

    async def hooks_config(self, request: Request) -> Response:
        data = await read_body(request)
        try:
            settings = HookSettings(**data)
        except (TypeError, ValueError) as exc:
            raise EmulatorError(400, "E0000001", f"Api validation failed: {exc}") from exc
        ok = await self.state.hooks.configure(settings)
        if not ok:
            raise EmulatorError(400, "E0000001", "Event hook verification failed")
        return JSONResponse({"verified": True})

    async def hooks_stats(self, _request: Request) -> Response:
        return JSONResponse(self.state.hooks.stats())

    async def churn(self, request: Request) -> Response:
        from scimflow.okta.emulator.churn import ChurnDriver

        state = self.state
        data = await read_body(request)
        if state.churn is not None:
            state.churn.stop()
        try:
            state.churn = ChurnDriver(
                state.directory, rate=float(data.get("rate", 1.0)), seed=int(data.get("seed", 0))
            )
        except ValueError as exc:
            raise EmulatorError(400, "E0000001", f"Api validation failed: {exc}") from exc
        state.churn.start(duration=float(data["seconds"]) if data.get("seconds") else None)
        return JSONResponse({"started": True})

    async def churn_stop(self, _request: Request) -> Response:
        state = self.state
        done = state.churn.stop() if state.churn is not None else 0
        return JSONResponse({"stopped": True, "mutations": done})

    async def mutate(self, request: Request) -> Response:
        """Run ``count`` mutations of one churn ``action`` now; for load tests and benchmarks."""
        from scimflow.okta.emulator.churn import ChurnDriver

        d = self.state.directory
        data = await read_body(request)
        driver = ChurnDriver(d, rate=1.0, seed=int(data.get("seed", 0)))
        action = getattr(driver, str(data.get("action", "")), None)
        if action is None or str(data.get("action")) not in driver.action_names():
            raise EmulatorError(
                400, "E0000001", f"Api validation failed: action: one of {driver.action_names()}"
            )
        since = d.now()
        before = len(d.log)
        for _ in range(int(data.get("count", 1))):
            with d.lock:
                try:
                    action()
                except EmulatorError:
                    continue
        changed = sorted(
            {t["id"] for e in d.log[before:] for t in e["target"] if t["type"] == "User"}
        )
        return JSONResponse({"since": since, "events": len(d.log) - before, "user_ids": changed})

    async def faults(self, request: Request) -> Response:
        data = await read_body(request)
        try:
            self.state.faults.append(Fault(**data))
        except TypeError as exc:
            raise EmulatorError(400, "E0000001", f"Api validation failed: {exc}") from exc
        return JSONResponse({"faults": len(self.state.faults)})
