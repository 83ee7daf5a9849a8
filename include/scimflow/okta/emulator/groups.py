"""The emulator's ``/api/v1/groups`` endpoints: list and search, create, read, update,
delete, and members (list, add, remove)."""

from __future__ import annotations

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

__all__ = ["GroupsApi"]


class GroupsApi:
    def __init__(self, directory: Directory) -> None:
        self.d = directory

    def routes(self, guard: ApiGuard) -> list[Route]:
        return [
            Route("/api/v1/groups", guard(self.list_groups), methods=["GET"]),
            Route("/api/v1/groups", guard(self.create_group), methods=["POST"]),
            Route("/api/v1/groups/{gid}", guard(self.get_group), methods=["GET"]),
            Route("/api/v1/groups/{gid}", guard(self.update_group), methods=["PUT"]),
            Route("/api/v1/groups/{gid}", guard(self.delete_group), methods=["DELETE"]),
            Route("/api/v1/groups/{gid}/users", guard(self.group_users), methods=["GET"]),
            Route(
                "/api/v1/groups/{gid}/users/{uid}",
                guard(self.group_member),
                methods=["PUT", "DELETE"],
            ),
        ]

    async def list_groups(self, request: Request) -> Response:
        d = self.d
        limit = page_limit(request, 10000, 10000)
        keep = predicate(request)
        with d.lock:
            items, nxt = d.page(
                d.group_ids,
                d.groups,
                after=request.query_params.get("after"),
                limit=limit,
                keep=keep,
            )
            payload = dump(items)
        return list_response(payload, links(request, nxt))

    async def create_group(self, request: Request) -> Response:
        d = self.d
        data = await read_body(request)
        profile = data.get("profile") or {}
        gid = d.create_group(str(profile.get("name") or ""), str(profile.get("description") or ""))
        return JSONResponse(d.get_group(gid))

    async def get_group(self, request: Request) -> Response:
        return JSONResponse(self.d.get_group(request.path_params["gid"]))

    async def update_group(self, request: Request) -> Response:
        data = await read_body(request)
        return JSONResponse(
            self.d.update_group(request.path_params["gid"], dict(data.get("profile") or {}))
        )

    async def delete_group(self, request: Request) -> Response:
        self.d.delete_group(request.path_params["gid"])
        return Response(status_code=204)

    async def group_users(self, request: Request) -> Response:
        d = self.d
        limit = page_limit(request, 1000, 1000)
        with d.lock:
            d.get_group(request.path_params["gid"])
            ids = sorted(d.members[request.path_params["gid"]])
            items, nxt = d.page(ids, d.users, after=request.query_params.get("after"), limit=limit)
            payload = dump(items)
        return list_response(payload, links(request, nxt))

    async def group_member(self, request: Request) -> Response:
        gid, uid = request.path_params["gid"], request.path_params["uid"]
        if request.method == "PUT":
            self.d.add_member(gid, uid)
        else:
            self.d.remove_member(gid, uid)
        return Response(status_code=204)
