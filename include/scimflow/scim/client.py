"""One SCIM 2.0 target: capability discovery, auth, paging, and errors classified once.

Built on scim2-client (its httpx2 engine) and scim2-models. Payloads go out as the JSON
dicts that :mod:`scimflow.scim.mapping` built from validated scim2-models objects.
Every failure becomes one of the exceptions of :mod:`scimflow.errors` by what should
happen next: :class:`ScimTransientError` (retry), :class:`ScimConflictError` (link),
:class:`ScimNotFoundError` (recreate), :class:`ScimRejectedError` (park).

The client adapts to what the server says in ``/ServiceProviderConfig`` and to what it
does: PATCH or PUT, filtering or a full read, servers that ignore ``startIndex/count``,
answer PATCH with 200 or 204, or compare userName case-sensitively.

It is also the one retry layer: every request, read or write, waits for the target's
rate limit, and a transient failure is retried with backoff (``Retry-After`` honoured)
up to ``max_attempts`` times, each retry logged once. A list that comes out shorter
than the server says it is raises :class:`ScimIncompleteReadError` instead of ending.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import httpx2
from pyrate_limiter import Duration, Limiter, Rate
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
    ScimIncompleteReadError,
    ScimNotFoundError,
    ScimRejectedError,
    ScimTransientError,
)

if TYPE_CHECKING:
    from scimflow.scim.config import TargetConfig

__all__ = [
    "Capabilities",
    "OAuth2ClientCredentials",
    "ScimTarget",
    "backoff",
    "classify",
    "last_status",
    "open_client",
    "retrying",
]

logger = logging.getLogger(__name__)

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


def retrying(
    max_attempts: int,
    sleep: Callable[[float], None] = time.sleep,
    before_sleep: Callable[[RetryCallState], None] | None = None,
) -> Retrying:
    """The retry policy of transient failures (:class:`ScimTransientError`): at most
    ``max_attempts`` attempts, waiting :func:`backoff` between them."""
    return Retrying(
        stop=stop_after_attempt(max_attempts),
        wait=backoff,
        retry=retry_if_exception_type(ScimTransientError),
        reraise=True,
        sleep=sleep,
        before_sleep=before_sleep,
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


def _quoted(value: str) -> str:
    """``value`` as a SCIM filter string (RFC 7644 §3.4.2.2): quoted, with backslashes and
    quotes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _total(page: dict[str, Any]) -> int | None:
    raw = page.get("totalResults")
    if raw is None:
        return None
    try:
        return int(raw)
    except (TypeError, ValueError):
        return None


@dataclass
class _UserIndex:
    """The target's users by externalId and by lower-cased userName, read once."""

    by_external_id: dict[str, dict[str, Any]] = field(default_factory=dict)
    by_login: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    readable: bool = True  # False: the list could not be read completely

    @classmethod
    def of(cls, users: Iterable[dict[str, Any]]) -> _UserIndex:
        index = cls()
        for user in users:
            external_id, login = user.get("externalId"), user.get("userName")
            if isinstance(external_id, str) and external_id:
                index.by_external_id.setdefault(external_id, user)
            if isinstance(login, str) and login:
                index.by_login.setdefault(login.lower(), []).append(user)
        return index

    def find(self, external_id: str | None, user_name: str | None) -> dict[str, Any] | None:
        if external_id and external_id in self.by_external_id:
            return self.by_external_id[external_id]
        if not user_name:
            return None
        same = self.by_login.get(user_name.lower(), [])
        exact = [u for u in same if u.get("userName") == user_name]
        if exact:
            return exact[0]
        # one login in another case is the user; two or more are ambiguous: none
        return same[0] if len(same) == 1 else None


class ScimTarget:
    """A SCIM 2.0 service provider, reached through scim2-client.

    Every request waits for the target's rate limit (``requests_per_second``; None: no
    limit) and is retried on :class:`ScimTransientError` up to ``max_attempts`` attempts
    in all, reads and writes alike: a write retried after a lost answer may meet 409,
    which the caller resolves (it links the existing resource). ``sleep`` waits between
    attempts (tests pass one that does not).
    """

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
        requests_per_second: float | None = None,
        max_attempts: int = 5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if requests_per_second is not None and requests_per_second <= 0:
            raise ValueError("requests_per_second must be positive")
        self.name = name
        self.base_url = base_url.rstrip("/")
        self.max_attempts = max_attempts
        self.requests_per_second = requests_per_second
        self._sleep = sleep
        self._limiter = (
            Limiter(Rate(max(1, round(requests_per_second)), Duration.SECOND))
            if requests_per_second is not None
            else None
        )
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
        # userName → user, read once when a filter cannot find a login in another case
        self._user_index: _UserIndex | None = None
        self._index_lock = threading.Lock()
        # False once the server refused a filter joined with "or": one clause a request
        self._or_filters = True

    def __repr__(self) -> str:
        return f"ScimTarget(name={self.name!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        self.http.close()

    # -- plumbing ------------------------------------------------------------------
    def call(self, what: str, fn: Callable[[], T]) -> T:
        """Run one request once; raise a classified :class:`ScimError` on failure."""
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

    def _send(self, what: str, fn: Callable[[], T]) -> T:
        """Run one request under the rate limit, retrying transient failures.

        Each retry is logged once at WARNING (the target, ``what``, the attempt, the
        status, the wait: never a body or a header). When the attempts run out, the
        last :class:`ScimTransientError` is raised again, its reason saying how many
        attempts were made.
        """

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            status = getattr(exc, "status", None)
            # a status, or for a network failure the exception's type (classify's reason)
            cause = f"HTTP {status}" if status is not None else getattr(exc, "reason", "failed")
            wait = state.next_action.sleep if state.next_action else 0.0
            logger.warning(
                "%s: %s: %s, attempt %d of %d; retrying in %.2f s",
                self.name,
                what,
                cause,
                state.attempt_number,
                self.max_attempts,
                wait,
            )

        attempts = 0
        try:
            for attempt in retrying(self.max_attempts, self._sleep, log_retry):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    if self._limiter is not None:
                        self._limiter.try_acquire(self.name)
                    return self.call(what, fn)
        except ScimTransientError as exc:
            plural = "attempt" if attempts == 1 else "attempts"
            raise ScimTransientError(
                exc.target,
                exc.what,
                f"{exc.reason}, after {attempts} {plural}",
                status=exc.status,
                retry_after=exc.retry_after,
            ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def discover(self) -> Capabilities:
        def read() -> Any:
            return self.scim.query(ServiceProviderConfig, check_response_payload=False)

        config = self._send("GET /ServiceProviderConfig", read)
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

        return self._send(what, send)

    # -- reads -----------------------------------------------------------------------
    def list_resources(
        self, endpoint: str, *, page_size: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every resource of an endpoint, by startIndex/count.

        A server that sends everything in one page (ignoring ``count``) is read whole.
        One that sends a page again (it ignores ``startIndex``) before its
        ``totalResults`` were read, or whose pages run out before them, raises
        :class:`ScimIncompleteReadError` at that point instead of ending the iteration:
        read the whole iterator before acting on what it gave.
        """
        return self._read_all(endpoint, f"GET /{endpoint}", {}, page_size=page_size)

    def _read_all(
        self,
        endpoint: str,
        what: str,
        params: dict[str, str],
        *,
        page_size: int | None = None,
    ) -> Iterator[dict[str, Any]]:
        count = page_size or min(self.capabilities.max_results, 1000)
        start = 1
        ids: set[str] = set()
        while True:
            page = (
                self._request(
                    what,
                    "GET",
                    f"/{endpoint}",
                    params={**params, "startIndex": start, "count": count},
                    expected=(200,),
                )
                or {}
            )
            resources = [r for r in page.get("Resources") or [] if isinstance(r, dict)]
            total = _total(page)
            fresh = [r for r in resources if str(r.get("id")) not in ids]
            for resource in fresh:
                ids.add(str(resource.get("id")))
                yield resource
            read = len(ids)
            if total is not None and read >= total:
                return  # every resource, in pages or all at once
            if not resources:
                if total is not None:
                    raise self._incomplete(
                        what, read, total, "its pages ran out before its totalResults"
                    )
                return
            if not fresh:
                raise self._incomplete(
                    what,
                    read,
                    total,
                    "it sent a page of resources already read (it ignores startIndex/count)",
                )
            if total is None and len(resources) < count:
                return  # no totalResults: a page shorter than asked is the last one
            start += len(resources)

    def _incomplete(
        self, what: str, read: int, total: int | None, why: str
    ) -> ScimIncompleteReadError:
        claimed = (
            f"of the {total} its totalResults claims" if total is not None else "(no totalResults)"
        )
        return ScimIncompleteReadError(
            self.name,
            what,
            f"read {read} resources {claimed}, then {why}: the list would be short",
            read=read,
            total=total,
        )

    def lookup_users(
        self, keys: Iterable[tuple[str, str]], *, chunk: int = 50
    ) -> list[dict[str, Any]]:
        """The target's users having one of these ``(externalId, userName)``, by filtered
        reads of ``chunk`` keys each (``externalId eq "a" or userName eq "x" or ...``).

        The reader to use when :meth:`list_resources` raised
        :class:`ScimIncompleteReadError`. externalId is compared exactly, userName
        case-insensitively (RFC 7643), here as well as by the server; each user comes
        once. A server that refuses filters joined with ``or`` (400) is asked one clause
        a request. Raises :class:`ScimIncompleteReadError` when the server announces no
        filtering: then nothing can read its users completely.
        """
        if chunk < 1:
            raise ValueError("chunk must be at least 1")
        what = "GET /Users?filter=externalId,userName"
        if not self.capabilities.filter:
            raise ScimIncompleteReadError(
                self.name,
                what,
                "the server announces no filtering (ServiceProviderConfig), so its users "
                "cannot be read by filter, and its list cannot be read completely",
            )
        pairs = list(keys)
        found: dict[str, dict[str, Any]] = {}
        for i in range(0, len(pairs), chunk):
            part = pairs[i : i + chunk]
            external_ids = {e for e, _ in part if e}
            logins = {u.lower() for _, u in part if u}
            clauses = [f"externalId eq {_quoted(e)}" for e in sorted(external_ids)]
            clauses += [f"userName eq {_quoted(u)}" for u in sorted({u for _, u in part if u})]
            for resource in self._filter_any("Users", what, clauses):
                login = resource.get("userName")
                if resource.get("externalId") in external_ids or (
                    isinstance(login, str) and login.lower() in logins
                ):
                    found.setdefault(str(resource.get("id")), resource)
        return list(found.values())

    def _filter_any(self, endpoint: str, what: str, clauses: list[str]) -> Iterator[dict[str, Any]]:
        """The resources matching any of ``clauses``: one filter joined with ``or``, or one
        request a clause when the server refuses that."""
        if not clauses:
            return
        if self._or_filters and len(clauses) > 1:
            try:
                yield from list(self._read_all(endpoint, what, {"filter": " or ".join(clauses)}))
                return
            except ScimIncompleteReadError:
                # more matches than the server sends in a page, and it cannot page them:
                # ask for half as many at a time (one clause matches one user or two)
                half = len(clauses) // 2
                logger.warning(
                    "%s: %s: the answer to %d clauses cannot be paged; asking %d at a time",
                    self.name,
                    what,
                    len(clauses),
                    half,
                )
                yield from self._filter_any(endpoint, what, clauses[:half])
                yield from self._filter_any(endpoint, what, clauses[half:])
                return
            except ScimRejectedError as exc:
                if exc.status != 400:
                    raise
                logger.warning(
                    "%s: %s: the server refuses filters joined with 'or' (HTTP 400); "
                    "asking one clause a request",
                    self.name,
                    what,
                )
                self._or_filters = False
        for clause in clauses:
            yield from self._read_all(endpoint, what, {"filter": clause})

    def find_user(
        self, external_id: str | None = None, user_name: str | None = None
    ) -> dict[str, Any] | None:
        """The user with this externalId (compared exactly) or else this userName
        (compared case-insensitively, as RFC 7643 defines userName).

        By filter when the server can filter. A server that compares userName
        case-sensitively in filters finds no login in another case: then the users are
        read once, and matched by lower-cased userName; that index is kept for the
        client's life (it serves to find resources that exist, as after a 409). Without
        filtering, the same index serves every lookup, read again on a miss.
        """
        if self.capabilities.filter:
            if external_id:
                for resource in self._filtered("Users", "externalId", external_id):
                    if resource.get("externalId") == external_id:
                        return dict(resource)
            if not user_name:
                return None
            for resource in self._filtered("Users", "userName", user_name):
                found = resource.get("userName")
                if isinstance(found, str) and found.lower() == user_name.lower():
                    return dict(resource)
        return self._indexed_user(external_id, user_name)

    def _indexed_user(
        self, external_id: str | None, user_name: str | None
    ) -> dict[str, Any] | None:
        with self._index_lock:
            fresh = self._user_index is None
            if self._user_index is None:
                self._user_index = self._read_user_index()
            found = self._user_index.find(external_id, user_name)
            # without filtering the list is the only way, so a miss reads it again
            stale = not fresh and self._user_index.readable
            if found is None and stale and not self.capabilities.filter:
                self._user_index = self._read_user_index()
                found = self._user_index.find(external_id, user_name)
        return dict(found) if found is not None else None

    def _read_user_index(self) -> _UserIndex:
        logger.info("%s: reading the users once, to match userName case-insensitively", self.name)
        try:
            return _UserIndex.of(list(self.list_resources("Users")))
        except ScimIncompleteReadError as exc:
            logger.warning(
                "%s: the users cannot be read completely (%s): a login in another case "
                "cannot be found",
                self.name,
                exc.reason,
            )
            return _UserIndex(readable=False)

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
        """Every resource of ``GET /{endpoint}?filter=attr eq "value"``, in pages (the
        value escaped as a SCIM filter string)."""
        params = {"filter": f"{attr} eq {_quoted(value)}"}
        if attributes:
            params["attributes"] = attributes
        return list(self._read_all(endpoint, f"GET /{endpoint}?filter={attr}", params))

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


def open_client(
    target_config: TargetConfig, *, transport: httpx2.BaseTransport | None = None
) -> ScimTarget:
    """A :class:`ScimTarget` from a target's configuration, credentials resolved now, its
    capabilities discovered; its concurrency and rate limit are the configuration's."""
    auth = target_config.auth
    headers: dict[str, str] = {}
    http_auth: httpx2.Auth | None = None
    if auth.type == "bearer":
        headers["Authorization"] = f"Bearer {auth.token.resolve()}"
    elif auth.type == "basic":
        http_auth = httpx2.BasicAuth(auth.username, auth.password.resolve())
    else:
        http_auth = OAuth2ClientCredentials(
            str(auth.token_url), auth.client_id, auth.client_secret.resolve(), auth.scope
        )
    client = ScimTarget(
        target_config.name,
        str(target_config.base_url),
        auth=http_auth,
        headers=headers,
        max_connections=target_config.concurrency,
        transport=transport,
        requests_per_second=target_config.requests_per_second,
    )
    try:
        client.discover()
    except BaseException:
        client.close()
        raise
    return client
