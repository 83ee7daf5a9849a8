"""Read Okta through the official SDK: full export, hydration, System Log.

Every read is paced by the rate-limit headers Okta returns, so a long export stays under
the limit instead of bouncing off 429s (the SDK's own 429 retry stays as a safety net).
A failed page raises :class:`~scimflow.errors.OktaPageError`: an error never looks like
the end of the data, because a short user list would deprovision people downstream.
The token is never logged; errors name the endpoint and Okta's error code only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import aiohttp
import pandas as pd

from scimflow.errors import OktaAuthError, OktaError, OktaPageError

__all__ = [
    "OktaExport",
    "OktaSettings",
    "OktaSource",
    "RatePacer",
    "groups_frame",
    "memberships_frame",
    "users_frame",
]

log = logging.getLogger(__name__)

USER_COLUMNS = {
    "id": "string",
    "status": "string",
    "created": "datetime64[ms, UTC]",
    "activated": "datetime64[ms, UTC]",
    "status_changed": "datetime64[ms, UTC]",
    "last_updated": "datetime64[ms, UTC]",
    "login": "string",
    "email": "string",
    "first_name": "string",
    "last_name": "string",
    "display_name": "string",
    "mobile_phone": "string",
    "title": "string",
    "department": "string",
    "employee_number": "string",
    "cost_center": "string",
    "organization": "string",
    "division": "string",
    "manager_id": "string",
    "deleted": "bool",
}
_PROFILE_KEYS = {
    "login": "login",
    "email": "email",
    "firstName": "first_name",
    "lastName": "last_name",
    "displayName": "display_name",
    "mobilePhone": "mobile_phone",
    "title": "title",
    "department": "department",
    "employeeNumber": "employee_number",
    "costCenter": "cost_center",
    "organization": "organization",
    "division": "division",
    "managerId": "manager_id",
}
GROUP_COLUMNS = {
    "id": "string",
    "name": "string",
    "description": "string",
    "type": "string",
    "created": "datetime64[ms, UTC]",
    "last_updated": "datetime64[ms, UTC]",
    "last_membership_updated": "datetime64[ms, UTC]",
    "deleted": "bool",
}
MEMBERSHIP_COLUMNS = {"group_id": "string", "user_id": "string"}


def _user_row(user: dict[str, Any], *, deleted: bool = False) -> dict[str, Any]:
    profile = user.get("profile") or {}
    row: dict[str, Any] = {
        "id": user.get("id"),
        "status": user.get("status"),
        "created": user.get("created"),
        "activated": user.get("activated"),
        "status_changed": user.get("statusChanged"),
        "last_updated": user.get("lastUpdated"),
        "deleted": deleted,
    }
    for key, column in _PROFILE_KEYS.items():
        row[column] = profile.get(key)
    return row


def _frame(rows: list[dict[str, Any]], columns: dict[str, str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=list(columns))
    for column, dtype in columns.items():
        if dtype.startswith("datetime64"):
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601").astype(dtype)
        else:
            frame[column] = frame[column].astype(dtype)
    return frame


def users_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Users as a typed DataFrame (one row per user; ``deleted`` for users gone from Okta)."""
    return _frame(rows, USER_COLUMNS)


def groups_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return _frame(rows, GROUP_COLUMNS)


def memberships_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    return _frame(rows, MEMBERSHIP_COLUMNS)


def _dump(model: Any) -> dict[str, Any]:
    """An SDK model as Okta's JSON (``to_dict()`` would leave out id and timestamps)."""
    return dict(model.model_dump(by_alias=True, mode="json"))


def _group_dict(group: Any) -> dict[str, Any]:
    data = _dump(group)
    profile = getattr(group.profile, "actual_instance", None)
    data["profile"] = _dump(profile) if profile is not None else {}
    return data


def _group_row(group: dict[str, Any]) -> dict[str, Any]:
    profile = group.get("profile") or {}
    return {
        "id": group.get("id"),
        "name": profile.get("name"),
        "description": profile.get("description"),
        "type": group.get("type"),
        "created": group.get("created"),
        "last_updated": group.get("lastUpdated"),
        "last_membership_updated": group.get("lastMembershipUpdated"),
        "deleted": False,
    }


@dataclass(frozen=True)
class OktaExport:
    users: pd.DataFrame
    groups: pd.DataFrame
    memberships: pd.DataFrame
    requests: int
    seconds: float


@dataclass(frozen=True, kw_only=True)
class OktaSettings:
    org_url: str
    token: str = field(repr=False)
    page_size: int = 200
    concurrency: int = 4
    sdk_max_retries: int = 2

    def __post_init__(self) -> None:
        if not self.token:
            raise ValueError("the Okta API token is empty")
        if not 1 <= self.page_size <= 200:
            raise ValueError("page_size must be within 1 and 200 (Okta's maximum for users)")


class RatePacer:
    """Keeps each endpoint family under its limit from the headers Okta returns.

    After each response it stores the family's remaining budget and when the window
    resets (``X-Rate-Limit-Reset`` against the response's ``Date``, so clock skew between
    client and server does not matter). Before a request, a family whose budget is down
    to ``reserve`` (the requests that may be in flight) waits for its reset.
    """

    def __init__(self, reserve: int) -> None:
        self.reserve = reserve
        self._state: dict[str, tuple[int, float]] = {}  # family -> (remaining, local reset time)
        self.waited = 0.0
        self.requests = 0
        self._in_flight: dict[str, int] = {}

    async def before(self, family: str) -> None:
        while True:
            remaining, reset_at = self._state.get(family, (1 << 30, 0.0))
            budget = remaining - self._in_flight.get(family, 0)
            now = time.monotonic()
            if budget > 0 or now >= reset_at:
                break
            pause = reset_at - now
            self.waited += pause
            await asyncio.sleep(pause)
            if self._state.get(family, (0, 0.0))[1] <= reset_at:  # nobody saw a newer window
                self._state[family] = (1 << 30, 0.0)
        self._in_flight[family] = self._in_flight.get(family, 0) + 1
        self.requests += 1

    def after(self, family: str, headers: Any) -> None:
        self._in_flight[family] = max(0, self._in_flight.get(family, 1) - 1)
        if headers is None:
            return
        get = headers.get
        remaining, reset, date = (
            get("X-Rate-Limit-Remaining") or get("x-rate-limit-remaining"),
            get("X-Rate-Limit-Reset") or get("x-rate-limit-reset"),
            get("Date") or get("date"),
        )
        if remaining is None or reset is None:
            return
        try:
            server_now = parsedate_to_datetime(date).timestamp() if date else time.time()
            wait = max(0.0, float(reset) - server_now)
            self._state[family] = (int(remaining) - self.reserve, time.monotonic() + wait)
        except (TypeError, ValueError):
            return


def _raise_for(what: str, err: Any, resp: Any, *, page: bool) -> None:
    status = getattr(resp, "status", None) or getattr(err, "status", None)
    code = getattr(err, "error_code", None)
    summary = getattr(err, "error_summary", None) or str(err)
    if status == 401 or code == "E0000011":
        raise OktaAuthError(
            what, "the API token was refused (E0000011)", status=401, code="E0000011"
        )
    cls = OktaPageError if page else OktaError
    raise cls(what, f"HTTP {status} {code or ''} {summary}".strip(), status=status, code=code)


class OktaSource:
    """Reads Okta through the official SDK, paced by its rate-limit headers."""

    def __init__(self, settings: OktaSettings) -> None:
        self.settings = settings
        self.pacer = RatePacer(reserve=settings.concurrency)
        self._client: Any = None

    async def __aenter__(self) -> OktaSource:
        from okta.client import Client as OktaClient

        if self.settings.org_url.startswith("http://"):
            # the SDK refuses plain HTTP unless told it is a test org (the local emulator)
            os.environ.setdefault("OKTA_TESTING_TESTINGDISABLEHTTPSCHECK", "true")
        config = {
            "orgUrl": self.settings.org_url,
            "token": self.settings.token,
            "rateLimit": {"maxRetries": self.settings.sdk_max_retries},
            "logging": {"enabled": False},
        }
        self._client = OktaClient(config)
        await self._client.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._client is not None:
            await self._client.__aexit__(*exc)

    async def _call(
        self, family: str, method: str, *args: Any, **kwargs: Any
    ) -> tuple[Any, Any, Any]:
        await self.pacer.before(family)
        resp = None
        try:
            items, resp, err = await getattr(self._client, method)(*args, **kwargs)
        except (OSError, TimeoutError, aiohttp.ClientError, AttributeError) as exc:
            # no answer at all (the SDK itself trips over the missing response with an
            # AttributeError): the org cannot be reached
            raise OktaError(
                method, f"{self.settings.org_url} cannot be reached ({type(exc).__name__})"
            ) from exc
        finally:
            self.pacer.after(family, getattr(resp, "headers", None))
        return items, resp, err

    async def _pages(
        self, family: str, method: str, what: str, *args: Any, **kwargs: Any
    ) -> AsyncIterator[list[Any]]:
        from okta.pagination import PaginationHelper

        after: str | None = None
        page = 1
        while True:
            call_kwargs = dict(kwargs)
            if after:
                call_kwargs["after"] = after
            items, resp, err = await self._call(family, method, *args, **call_kwargs)
            if err is not None:
                _raise_for(f"{what} page {page}", err, resp, page=True)
            yield list(items or [])
            after = PaginationHelper.extract_next_cursor(resp.headers) if resp is not None else None
            if not after:
                return
            page += 1

    # -- export -------------------------------------------------------------------------
    async def list_users(self, *, search: str | None = None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"limit": self.settings.page_size}
        if search:
            kwargs["search"] = search
        async for items in self._pages("users_list", "list_users", "GET /api/v1/users", **kwargs):
            rows.extend(_user_row(_dump(u)) for u in items)
        return rows

    async def list_groups(self) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        async for items in self._pages("groups", "list_groups", "GET /api/v1/groups", limit=10000):
            rows.extend(_group_row(_group_dict(g)) for g in items)
        return rows

    async def group_member_ids(self, group_id: str) -> list[str]:
        ids: list[str] = []
        async for items in self._pages(
            "group_one",
            "list_group_users",
            f"GET /api/v1/groups/{group_id}/users",
            group_id,
            limit=1000,
        ):
            ids.extend(u.id for u in items)
        return ids

    async def export(self) -> OktaExport:
        """Every user (all statuses), group and membership, as typed DataFrames."""
        t0, r0 = time.monotonic(), self.pacer.requests
        # a plain list leaves deprovisioned users out: list them too, as a second search
        users_task = asyncio.create_task(self.list_users())
        deprovisioned_task = asyncio.create_task(
            self.list_users(search='status eq "DEPROVISIONED"')
        )
        sem = asyncio.Semaphore(self.settings.concurrency)

        async def members(gid: str) -> list[dict[str, str]]:
            async with sem:
                return [
                    {"group_id": gid, "user_id": uid} for uid in await self.group_member_ids(gid)
                ]

        try:
            groups = await self.list_groups()
            member_lists = await asyncio.gather(*(members(g["id"]) for g in groups))
            users = await users_task + await deprovisioned_task
        except BaseException:
            for task in (users_task, deprovisioned_task):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            raise
        memberships = [m for ms in member_lists for m in ms]
        return OktaExport(
            users=users_frame(users).drop_duplicates("id", keep="last").reset_index(drop=True),
            groups=groups_frame(groups),
            memberships=_frame(memberships, MEMBERSHIP_COLUMNS),
            requests=self.pacer.requests - r0,
            seconds=time.monotonic() - t0,
        )

    # -- hydration --------------------------------------------------------------------
    async def get_user(self, user_id: str) -> dict[str, Any]:
        """One user's current state; a user gone from Okta comes back deprovisioned."""
        user, resp, err = await self._call("user_get", "get_user", user_id)
        if err is not None:
            status = getattr(resp, "status", None) or getattr(err, "status", None)
            if status == 404:
                return {**_user_row({"id": user_id, "status": "DEPROVISIONED"}), "deleted": True}
            _raise_for(f"GET /api/v1/users/{user_id}", err, resp, page=False)
        return _user_row(_dump(user))

    async def hydrate_users(
        self, user_ids: Iterable[str], *, changed_since: str | None = None
    ) -> pd.DataFrame:
        """The current state of the named users, for the fewest requests.

        With ``changed_since`` (the earliest event time of the batch), a ``lastUpdated``
        search returns 200 users a request; it stops as soon as it has cost as many
        requests as the GETs it still saves, and the users it did not find are read one
        GET each (a 404 means deleted: deprovisioned). Without it, one GET each.
        """
        wanted = list(dict.fromkeys(user_ids))
        found: dict[str, dict[str, Any]] = {}
        if changed_since and len(wanted) > 1:
            pending = set(wanted)
            spent = 0
            search = f'lastUpdated ge "{changed_since}"'
            async for items in self._pages(
                "users_list",
                "list_users",
                "GET /api/v1/users?search",
                search=search,
                limit=self.settings.page_size,
            ):
                spent += 1
                for u in items:
                    if u.id in pending:
                        found[u.id] = _user_row(_dump(u))
                        pending.discard(u.id)
                if not pending or spent >= len(pending):
                    break
        sem = asyncio.Semaphore(self.settings.concurrency)

        async def one(uid: str) -> dict[str, Any]:
            async with sem:
                return await self.get_user(uid)

        rest = [u for u in wanted if u not in found]
        for row in await asyncio.gather(*(one(u) for u in rest)):
            found[row["id"]] = row
        return users_frame([found[u] for u in wanted])

    async def user_group_memberships(self, user_ids: Iterable[str]) -> pd.DataFrame:
        """Every group each named user belongs to (one request a user), as memberships.

        For targets scoped by group: a stream batch needs each changed user's groups to
        know whether the user is in a target's scope. A user gone from Okta has none.
        """
        sem = asyncio.Semaphore(self.settings.concurrency)

        async def one(uid: str) -> list[dict[str, str]]:
            async with sem:
                groups, resp, err = await self._call("user_other", "list_user_groups", uid)
            if err is not None:
                status = getattr(resp, "status", None) or getattr(err, "status", None)
                if status == 404:
                    return []
                _raise_for(f"GET /api/v1/users/{uid}/groups", err, resp, page=False)
            return [{"group_id": str(g.id), "user_id": uid} for g in groups or []]

        rows = await asyncio.gather(*(one(u) for u in dict.fromkeys(user_ids)))
        return memberships_frame([m for ms in rows for m in ms])

    async def hydrate_groups(self, group_ids: Iterable[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The named groups' current state and members; a group gone from Okta comes back
        with ``deleted`` set and no members."""
        sem = asyncio.Semaphore(self.settings.concurrency)

        async def one(gid: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
            async with sem:
                group, resp, err = await self._call("group_one", "get_group", gid)
                if err is not None:
                    status = getattr(resp, "status", None) or getattr(err, "status", None)
                    if status == 404:
                        return {**_group_row({"id": gid}), "deleted": True}, []
                    _raise_for(f"GET /api/v1/groups/{gid}", err, resp, page=False)
                members = await self.group_member_ids(gid)
            return _group_row(_group_dict(group)), [
                {"group_id": gid, "user_id": u} for u in members
            ]

        results = await asyncio.gather(*(one(g) for g in dict.fromkeys(group_ids)))
        groups = groups_frame([g for g, _ in results])
        memberships = _frame([m for _, ms in results for m in ms], MEMBERSHIP_COLUMNS)
        return groups, memberships

    # -- System Log -------------------------------------------------------------------
    async def system_log(
        self, since: str, until: str, *, limit: int = 1000
    ) -> list[dict[str, Any]]:
        """Every System Log event published in [since, until), following ``next`` to the end."""
        events: list[dict[str, Any]] = []
        async for items in self._pages(
            "logs", "list_log_events", "GET /api/v1/logs", since=since, until=until, limit=limit
        ):
            if not items:
                break
            events.extend(_dump(e) for e in items)
        return events
