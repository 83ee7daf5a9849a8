"""The exception families of scimflow, one per boundary.

Every error scimflow raises derives from :class:`ScimflowError`. Each boundary has its
own family so that callers classify an error once, by what should happen next:

- :class:`ServiceError`: a local service (Kafka, PostgreSQL, a SCIM server, Airflow)
  could not be installed, started, reached or stopped. Stop and report.
- :class:`StateStoreError`: the state store (links, parked records, audit log) could
  not be reached, migrated, read or written. Stop: the run's writes cannot be recorded.
- :class:`ConfigError`: the configuration file is missing or invalid, or a secret it
  references cannot be resolved. Stop and fix the configuration or the environment.
"""

from __future__ import annotations

__all__ = [
    "ConfigError",
    "DeletionGuardError",
    "OktaAuthError",
    "OktaError",
    "OktaPageError",
    "PreflightError",
    "ScimConflictError",
    "ScimError",
    "ScimIncompleteReadError",
    "ScimNotFoundError",
    "ScimRejectedError",
    "ScimTransientError",
    "ScimflowError",
    "ServiceError",
    "StateStoreError",
    "TargetUnavailableError",
]


class ScimflowError(Exception):
    """Base class of every error scimflow raises on purpose."""


class ServiceError(ScimflowError):
    """A local service could not be installed, started, reached or stopped."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason


class PreflightError(ScimflowError):
    """A dependency of the pipeline does not answer as it must."""

    def __init__(self, component: str, reason: str) -> None:
        super().__init__(f"{component}: {reason}")
        self.component = component
        self.reason = reason


class OktaError(ScimflowError):
    """Okta refused or failed a request; ``status`` and ``code`` are Okta's when known."""

    def __init__(
        self, what: str, reason: str, *, status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(f"Okta {what}: {reason}")
        self.what = what
        self.reason = reason
        self.status = status
        self.code = code


class OktaAuthError(OktaError):
    """Okta refused the API token (401, E0000011): fix the credentials, retrying won't help."""


class OktaPageError(OktaError):
    """A page of a list failed: the list is incomplete and must not be used."""


class ScimError(ScimflowError):
    """A SCIM target failed a request; ``status`` is the HTTP status when there was one."""

    def __init__(self, target: str, what: str, reason: str, *, status: int | None = None) -> None:
        super().__init__(f"{target}: {what}: {reason}")
        self.target = target
        self.what = what
        self.reason = reason
        self.status = status


class ScimTransientError(ScimError):
    """Worth retrying: 429, 5xx, a timeout or a broken connection."""

    def __init__(
        self,
        target: str,
        what: str,
        reason: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(target, what, reason, status=status)
        self.retry_after = retry_after


class ScimConflictError(ScimError):
    """409: the resource exists already (by userName, externalId or displayName)."""


class ScimNotFoundError(ScimError):
    """404: the resource is gone from the target."""


class ScimRejectedError(ScimError):
    """Refused for good (a 4xx other than 404, 409, 429): park the record with the reason."""


class ScimIncompleteReadError(ScimError):
    """A read of a target's resources came out shorter than the target says it is.

    The server ignores ``startIndex``/``count`` (it sends a page again), or its pages add
    up to fewer resources than its ``totalResults``, or it cannot be read completely at
    all. The list must not be used: a short list would plan creates for resources that
    exist. Read by filter instead (``ScimTarget.lookup_users``), or stop. ``read`` is how
    many distinct resources were read, ``total`` what ``totalResults`` claimed (None when
    the server gave none).
    """

    def __init__(
        self,
        target: str,
        what: str,
        reason: str,
        *,
        read: int | None = None,
        total: int | None = None,
    ) -> None:
        super().__init__(target, what, reason)
        self.read = read
        self.total = total


class DeletionGuardError(ScimflowError):
    """A plan would deactivate or delete more of a target's users than it allows."""

    def __init__(self, target: str, planned: int, managed: int, max_share: float) -> None:
        share = planned / managed if managed else 1.0
        super().__init__(
            f"{target}: the plan deprovisions {planned} of {managed} users ({share:.0%}), "
            f"more than the deletion guard allows ({max_share:.0%}); nothing was written. "
            "Check the Okta source, then re-run with --force if this is intended."
        )
        self.target = target
        self.planned = planned
        self.managed = managed
        self.max_share = max_share


class StateStoreError(ScimflowError):
    """The state store failed an operation; the message names it, never the password."""

    def __init__(self, operation: str, reason: str) -> None:
        super().__init__(f"state store {operation}: {reason}")
        self.operation = operation
        self.reason = reason


class ConfigError(ScimflowError):
    """The configuration is invalid, or a secret it references cannot be resolved.

    ``source`` is the file (or the reference) at fault, ``reason`` names the key path and
    what is wrong with it; neither ever carries a secret value.
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class TargetUnavailableError(ScimflowError):
    """A target could not be reached: transient failures outlasted the client's retries.

    The only error a stream batch parks its records for (kind ``unavailable``); every
    other error fails the task. ``report`` is what was done before, when anything was.
    """

    def __init__(self, target: str, reason: str, *, report: object = None) -> None:
        super().__init__(f"{target}: unavailable: {reason}")
        self.target = target
        self.reason = reason
        self.report = report
