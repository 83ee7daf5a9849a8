"""The emulator's ``/api/v1/users`` endpoints: list and search, create, read, update,
delete, lifecycle operations, and a user's groups."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from scimflow.okta.emulator._http import (
    ApiGuard,
    dump,
    links,
    list_response,
    page_limit,
    predicate,
    read_body,
)
from scimflow.okta.emulator.directory import Directory

__all__ = ["UsersApi"]


class UsersApi:
    def __init__(self, directory: Directory) -> None:
        self.d = directory

    def routes(self, guard: ApiGuard) -> list[Route]:
        return [
            Route("/api/v1/users", guard(self.list_users), methods=["GET"]),
            Route("/api/v1/users", guard(self.create_user), methods=["POST"]),
            Route("/api/v1/users/{uid}", guard(self.get_user), methods=["GET"]),
            Route("/api/v1/users/{uid}", guard(self.update_user), methods=["POST", "PUT"]),
            Route("/api/v1/users/{uid}", guard(self.delete_user), methods=["DELETE"]),
            Route(
                "/api/v1/users/{uid}/lifecycle/{action}",
                guard(self.user_lifecycle),
                methods=["POST"],
            ),
            Route("/api/v1/users/{uid}/groups", guard(self.user_groups), methods=["GET"]),
        ]

    async def list_users(self, request: Request) -> Response:
        d = self.d
        limit = page_limit(request, 200, 200)
        keep = predicate(request)
        if keep is None:  # as in Okta, a plain list leaves out deprovisioned users

            def keep(u: dict[str, Any]) -> bool:
                return bool(u["status"] != "DEPROVISIONED")

        with d.lock:
            items, nxt = d.page(
                d.user_ids, d.users, after=request.query_params.get("after"), limit=limit, keep=keep
            )
            payload = dump(items)
        return list_response(payload, links(request, nxt))

    async def create_user(self, request: Request) -> Response:
        d = self.d
        data = await read_body(request)
        activate = request.query_params.get("activate", "true").lower() == "true"
        uid = d.create_user(
            dict(data.get("profile") or {}), status="ACTIVE" if activate else "STAGED"
        )
        return JSONResponse(d.get_user(uid))

    async def get_user(self, request: Request) -> Response:
        return JSONResponse(self.d.get_user(request.path_params["uid"]))

    async def update_user(self, request: Request) -> Response:
        d = self.d
        data = await read_body(request)
        user = d.update_profile(
            d.get_user(request.path_params["uid"])["id"], dict(data.get("profile") or {})
        )
        return JSONResponse(user)

    async def delete_user(self, request: Request) -> Response:
        d = self.d
        d.delete_user(d.get_user(request.path_params["uid"])["id"])
        return Response(status_code=204)

    async def user_lifecycle(self, request: Request) -> Response:
        d = self.d
        d.lifecycle(d.get_user(request.path_params["uid"])["id"], request.path_params["action"])
        return JSONResponse({})

    async def user_groups(self, request: Request) -> Response:
        d = self.d
        with d.lock:
            user = d.get_user(request.path_params["uid"])
            gids = d.user_groups.get(user["id"], set())
            items = [d.groups[g] for g in sorted(gids)]
            payload = dump(items)
        return list_response(payload, links(request, None))
