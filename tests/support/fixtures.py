"""The types of the shared fixtures of ``tests/conftest.py``, for the tests' annotations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, TypeAlias

if TYPE_CHECKING:
    from scimflow.okta.emulator.server import EmulatorServer

__all__ = ["ScimTenant", "StartEmulator"]

# (base URL, bearer token) of a fresh, empty SCIM target: the ``scim_tenant`` fixture
ScimTenant: TypeAlias = tuple[str, str]


class StartEmulator(Protocol):
    """The ``okta_emulator`` fixture: starts an Okta emulator, stopped after the test."""

    def __call__(
        self,
        *,
        users: int = 50,
        groups: int = 5,
        seed: int = 1,
        token: str = "emulator-token",
        time_scale: float = 1.0,
        logs_limit: int | None = None,
    ) -> EmulatorServer: ...
