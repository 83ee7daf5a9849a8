"""One SCIM 2.0 target: capability discovery, auth, paging, and errors classified once.

Built on scim2-client (its httpx2 engine) and scim2-models. Payloads go out as the JSON
dicts that :mod:`scimflow.scim.mapping` built from validated scim2-models objects.
Every failure becomes one of the exceptions of :mod:`scimflow.errors` by what should
happen next: :class:`ScimTransientError` (retry), :class:`ScimConflictError` (link),
:class:`ScimNotFoundError` (recreate), :class:`ScimRejectedError` (park).

The client adapts to what the server says in ``/ServiceProviderConfig`` and to what it
does: PATCH or PUT, filtering or a full read, servers that ignore ``startIndex/count``,
answer PATCH with 200 or 204, or compare userName case-sensitively.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx2
from scim2_client import (
    RequestNetworkException,
    SCIMClientException,
    UnexpectedStatusCodeException,
)
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_models import ServiceProviderConfig
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from scimflow.errors import (
    ScimConflictError,
    ScimError,
    ScimNotFoundError,
    ScimRejectedError,
    ScimTransientError,
)

__all__ = ["Capabilities", "OAuth2ClientCredentials", "ScimTarget", "classify", "last_status"]

USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH_SCHEMA = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
T = TypeVar("T")


@dataclass(frozen=True)
class Capabilities:
    patch: bool
    bulk: bool
    filter: bool
    etag: bool
    max_results: int


class OAuth2ClientCredentials(httpx2.Auth):
    """OAuth 2.0 client credentials (RFC 6749 §4.4): fetch a token, reuse it, renew on 401."""

    def __init__(
        self, token_url: str, client_id: str, client_secret: str, scope: str | None = None
    ) -> None:
        self.token_url = token_url
        self._form = {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        }
        if scope:
            self._form["scope"] = scope
        self._token: str | None = None
        self._expires = 0.0
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"OAuth2ClientCredentials(token_url={self.token_url!r})"

    def _fetch(self) -> str:
        resp = httpx2.post(self.token_url, data=self._form, timeout=10.0)
        if resp.status_code != 200:
            raise ScimRejectedError(
                "oauth2", f"POST {self.token_url}", f"token endpoint answered {resp.status_code}"
            )
        body = resp.json()
        self._expires = time.monotonic() + float(body.get("expires_in", 3600)) - 30
        return str(body["access_token"])

    def _current(self, *, renew: bool = False) -> str:
        with self._lock:
            if renew or self._token is None or time.monotonic() >= self._expires:
                self._token = self._fetch()
            return self._token

    def auth_flow(
        self, request: httpx2.Request
    ) -> Generator[httpx2.Request, httpx2.Response, None]:
        request.headers["Authorization"] = f"Bearer {self._current()}"
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = f"Bearer {self._current(renew=True)}"
            yield request


_last = threading.local()


def _remember(response: httpx2.Response) -> None:
    """Keep the status and Retry-After of this thread's last response for classification."""
    _last.status = response.status_code
    _last.retry_after = response.headers.get("Retry-After")


_BACKOFF = wait_exponential_jitter(multiplier=0.2, max=30, jitter=0.5)


def backoff(retry_state: RetryCallState) -> float:
    """Exponential backoff with jitter, but never sooner than the server's Retry-After."""
    wait = _BACKOFF(retry_state)
    exc = retry_state.outcome.exception() if retry_state.outcome else None
    after = getattr(exc, "retry_after", None)
    return max(wait, float(after)) if after is not None else wait


def retrying(max_attempts: int, sleep: Callable[[float], None] = time.sleep) -> Retrying:
    """Retries of transient failures: the one policy for reads here and writes in the executor."""
    return Retrying(
        stop=stop_after_attempt(max_attempts),
        wait=backoff,
        retry=retry_if_exception_type(ScimTransientError),
        reraise=True,
        sleep=sleep,
    )


def last_status() -> int | None:
    """The HTTP status of this thread's last response (for the audit log)."""
    return getattr(_last, "status", None)


def _retry_after(raw: str | None) -> float | None:
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        from email.utils import parsedate_to_datetime

        try:
            return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
        except (TypeError, ValueError):
            return None


def classify(
    target: str, what: str, exc: Exception, status: int | None, retry_after: str | None
) -> ScimError:
    """Turn a failure into the exception that says what to do next."""
    if isinstance(exc, ScimError):
        return exc
    if isinstance(exc, RequestNetworkException | httpx2.TransportError):
        return ScimTransientError(target, what, f"network: {type(exc.__cause__ or exc).__name__}")
    detail = (
        getattr(exc, "detail", None)
        or getattr(getattr(exc, "error", None), "detail", None)
        or type(exc).__name__
    )
    if status is None:
        status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
        status = int(status) if status is not None else None
    if status is None:
        return ScimRejectedError(target, what, f"unreadable answer: {detail}")
    reason = f"HTTP {status}: {detail}"
    if status == 429 or status >= 500 or status in (408, 412):
        return ScimTransientError(
            target, what, reason, status=status, retry_after=_retry_after(retry_after)
        )
    if status == 409:
        return ScimConflictError(target, what, reason, status=status)
    if status == 404:
        return ScimNotFoundError(target, what, reason, status=status)
    return ScimRejectedError(target, what, reason, status=status)


class ScimTarget:
    """A SCIM 2.0 service provider, reached through scim2-client."""

    def __init__(
        self,
        name: str,
        base_url: str,
        *,
        auth: httpx2.Auth | None = None,
        headers: dict[str, str] | None = None,
        timeout: float = 30.0,
        max_connections: int = 16,
        transport: httpx2.BaseTransport | None = None,
        read_attempts: int = 5,
    ) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.read_attempts = read_attempts
        self.http = httpx2.Client(
            base_url=self.base_url,
            auth=auth,
            headers=headers,
            timeout=timeout,
            transport=transport,
            limits=httpx2.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            event_hooks={"response": [_remember]},
        )
        self.scim = SyncSCIMClient(
            self.http, check_request_payload=False, check_response_payload=False
        )
        self.capabilities = Capabilities(
            patch=False, bulk=False, filter=False, etag=False, max_results=100
        )

    def __repr__(self) -> str:
        return f"ScimTarget(name={self.name!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        self.http.close()

    # -- plumbing ------------------------------------------------------------------
    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one request; raise a classified :class:`ScimError` on failure."""
        _last.status = None
        _last.retry_after = None
        try:
            result = fn()
        except ScimError:
            raise
        except (SCIMClientException, httpx2.HTTPError) as exc:
            status, retry_after = (
                getattr(_last, "status", None),
                getattr(_last, "retry_after", None),
            )
            raise classify(self.name, what, exc, status, retry_after) from exc
        return result

    def discover(self) -> Capabilities:
        def read() -> Any:
            return self.scim.query(ServiceProviderConfig, check_response_payload=False)

        config = self.call("GET /ServiceProviderConfig", read)
        if not isinstance(config, dict):
            config = {}
        self.capabilities = Capabilities(
            patch=bool(config.get("patch", {}).get("supported")),
            bulk=bool(config.get("bulk", {}).get("supported")),
            filter=bool(config.get("filter", {}).get("supported")),
            etag=bool(config.get("etag", {}).get("supported")),
            max_results=int(config.get("filter", {}).get("maxResults") or 100),
        )
        return self.capabilities

    def _request(
        self,
        what: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        expected: tuple[int, ...],
    ) -> dict[str, Any] | None:
        """A raw SCIM request through the same HTTP client (for PATCH bodies as dicts)."""

        def send() -> dict[str, Any] | None:
            resp = self.http.request(
                method,
                path,
                json=json,
                params=params,
                headers={
                    "Content-Type": "application/scim+json",
                    "Accept": "application/scim+json",
                },
            )
            if resp.status_code not in expected:
                detail = ""
                try:
                    detail = str(resp.json().get("detail") or "")
                except ValueError:
                    detail = resp.text[:200]
                exc = UnexpectedStatusCodeException(resp.status_code)
                exc.detail = detail[:300]  # type: ignore[attr-defined]
                raise exc
            if resp.status_code == 204 or not resp.content:
                return None
            body = resp.json()
            return body if isinstance(body, dict) else None

        if method != "GET":
            return self.call(what, send)  # writes: the executor retries, with its caps
        for attempt in retrying(self.read_attempts):  # reads are safe to repeat
            with attempt:
                return self.call(what, send)
        raise AssertionError("unreachable")  # pragma: no cover

    # -- reads -----------------------------------------------------------------------
    def list_resources(
        self, endpoint: str, *, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every resource of an endpoint by startIndex/count; copes with servers ignoring paging."""
        count = page_size or min(self.capabilities.max_results, 1000)
        start, seen = 1, 0
        ids: set[str] = set()
        while True:
            page = (
                self._request(
                    f"GET /{endpoint}",
                    "GET",
                    f"/{endpoint}",
                    params={"startIndex": start, "count": count},
                    expected=(200,),
                )
                or {}
            )
            resources = page.get("Resources") or []
            fresh = [r for r in resources if r.get("id") not in ids]
            for resource in fresh:
                ids.add(str(resource.get("id")))
                yield resource
            seen += len(resources)
            total = int(page.get("totalResults") or 0)
            if not fresh or seen >= total or len(resources) == total:
                return  # done, or the server sent everything at once (paging ignored)
            start += len(resources)

    def find_user(
        self, external_id: str | None = None, user_name: str | None = None
    ) -> dict[str, Any] | None:
        """The user with this externalId or userName (compared case-insensitively by us)."""
        for attr, value in (("externalId", external_id), ("userName", user_name)):
            if not value:
                continue
            if self.capabilities.filter:
                candidates = self._filtered("Users", attr, value)
            else:
                candidates = list(self.list_resources("Users"))
            for resource in candidates:
                found = resource.get(attr)
                if isinstance(found, str) and found.lower() == value.lower():
                    return dict(resource)
        return None

    def find_group(self, display_name: str) -> dict[str, Any] | None:
        if self.capabilities.filter:
            candidates = self._filtered("Groups", "displayName", display_name)
        else:
            candidates = list(self.list_resources("Groups"))
        return next((g for g in candidates if g.get("displayName") == display_name), None)

    def groups_with_member(self, scim_id: str) -> list[str]:
        """The ids of the groups listing ``scim_id`` as a member (needs filtering)."""
        found = self._filtered("Groups", "members.value", scim_id, attributes="id")
        return [str(g["id"]) for g in found if g.get("id")]

    def _filtered(
        self, endpoint: str, attr: str, value: str, *, attributes: str | None = None
    ) -> list[dict[str, Any]]:
        """The first page of ``GET /{endpoint}?filter=attr eq "value"`` (the value escaped
        as a SCIM filter string: backslashes and quotes)."""
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        params = {"filter": f'{attr} eq "{escaped}"'}
        if attributes:
            params["attributes"] = attributes
        page = (
            self._request(
                f"GET /{endpoint}?filter={attr}",
                "GET",
                f"/{endpoint}",
                params=params,
                expected=(200,),
            )
            or {}
        )
        return list(page.get("Resources") or [])

    def get(self, endpoint: str, scim_id: str) -> dict[str, Any]:
        return (
            self._request(
                f"GET /{endpoint}/{scim_id}", "GET", f"/{endpoint}/{scim_id}", expected=(200,)
            )
            or {}
        )

    # -- writes ------------------------------------------------------------------------
    def create(self, endpoint: str, payload: dict[str, Any]) -> dict[str, Any]:
        created = self._request(
            f"POST /{endpoint}", "POST", f"/{endpoint}", json=payload, expected=(201, 200)
        )
        if not created or not created.get("id"):
            raise ScimRejectedError(self.name, f"POST /{endpoint}", "the answer has no id")
        return created

    def replace(self, endpoint: str, scim_id: str, payload: dict[str, Any]) -> None:
        self._request(
            f"PUT /{endpoint}/{scim_id}",
            "PUT",
            f"/{endpoint}/{scim_id}",
            json={**payload, "id": scim_id},
            expected=(200, 204),
        )

    def patch(self, endpoint: str, scim_id: str, operations: list[dict[str, Any]]) -> None:
        body = {"schemas": [PATCH_SCHEMA], "Operations": operations}
        self._request(
            f"PATCH /{endpoint}/{scim_id}",
            "PATCH",
            f"/{endpoint}/{scim_id}",
            json=body,
            expected=(200, 204),
        )

    def delete(self, endpoint: str, scim_id: str) -> None:
        self._request(
            f"DELETE /{endpoint}/{scim_id}", "DELETE", f"/{endpoint}/{scim_id}", expected=(204, 200)
        )
