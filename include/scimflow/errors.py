"""The exception families of scimflow, one per boundary.

Every error scimflow raises derives from :class:`ScimflowError`. Each boundary has its
own family so that callers classify an error once, by what should happen next:

- :class:`ServiceError`: a local service (Kafka, PostgreSQL, a SCIM server, Airflow)
  could not be installed, started, reached or stopped. Stop and report.
"""

from __future__ import annotations

__all__ = [
    "OktaAuthError",
    "OktaError",
    "OktaPageError",
    "PreflightError",
    "ScimflowError",
    "ServiceError",
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
