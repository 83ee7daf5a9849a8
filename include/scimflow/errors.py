"""The exception families of scimflow, one per boundary.

Every error scimflow raises derives from :class:`ScimflowError`. Each boundary has its
own family so that callers classify an error once, by what should happen next:

- :class:`ServiceError`: a local service (Kafka, PostgreSQL, a SCIM server, Airflow)
  could not be installed, started, reached or stopped. Stop and report.
"""

from __future__ import annotations

__all__ = ["PreflightError", "ScimflowError", "ServiceError"]


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
