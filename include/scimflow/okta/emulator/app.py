"""The emulator's HTTP API: Okta's Management API subset, System Log, and emulator controls.

Served by uvicorn (``scimflow okta-emulator serve``). Every ``/api/v1`` request needs
``Authorization: SSWS <token>`` (the SDK's ``SSWS<token>`` too), is counted by the rate
limiter and answers with its headers. Lists page with ``limit``/``after`` and ``Link``
headers, ``rel="self"`` first and ``rel="next"`` last, as Okta sends them. Errors carry
Okta's error bodies. ``/emulator/*`` drives the emulator itself (Event Hook target,
churn, delivery switches); ``/healthz`` answers without a token.

The endpoints live by concern: :mod:`~scimflow.okta.emulator.users`,
:mod:`~scimflow.okta.emulator.groups`, :mod:`~scimflow.okta.emulator.logs` and
:mod:`~scimflow.okta.emulator.controls`; what they share (auth, rate limit, faults,
paging, error bodies) is in :mod:`scimflow.okta.emulator._http`.
"""

from __future__ import annotations

from starlette.applications import Starlette

from scimflow.okta.emulator._http import ApiGuard
from scimflow.okta.emulator.controls import EmulatorControls
from scimflow.okta.emulator.groups import GroupsApi
from scimflow.okta.emulator.logs import SystemLogApi
from scimflow.okta.emulator.state import EmulatorState, Fault
from scimflow.okta.emulator.users import UsersApi

__all__ = ["EmulatorState", "Fault", "build_app"]


def build_app(state: EmulatorState) -> Starlette:
    """The emulator's app over ``state``."""
    guard = ApiGuard(state)
    routes = [
        *UsersApi(state.directory).routes(guard),
        *GroupsApi(state.directory).routes(guard),
        *SystemLogApi(state.directory).routes(guard),
        *EmulatorControls(state).routes(guard),
    ]
    return Starlette(routes=routes)
