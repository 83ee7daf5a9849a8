"""The ``scimflow`` command line."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from scimflow.errors import ServiceError
from scimflow.services import ServicesSettings, Stack

app = typer.Typer(help="Keep SCIM 2.0 applications equal to Okta.", no_args_is_help=True)
services_app = typer.Typer(
    help="Local services: Kafka, PostgreSQL, SCIM targets, Airflow.", no_args_is_help=True
)
app.add_typer(services_app, name="services")

console = Console()

Names = Annotated[
    list[str] | None,
    typer.Argument(
        help="Services (kafka, postgres, scim-a, scim-b, airflow); default: all but airflow."
    ),
]
WithAirflow = Annotated[bool, typer.Option("--airflow", help="Include Airflow standalone.")]


def _stack() -> Stack:
    return Stack(ServicesSettings.from_env())


def _select(stack: Stack, names: list[str] | None, with_airflow: bool):  # type: ignore[no-untyped-def]
    try:
        return stack.select(names, with_airflow=with_airflow)
    except KeyError as exc:
        raise typer.BadParameter(str(exc.args[0])) from exc


def _print_status(stack: Stack, names: list[str] | None, with_airflow: bool) -> bool:
    table = Table(title=f"scimflow services ({stack.settings.home})")
    for col in ("service", "state", "pid", "address", "detail", "log"):
        table.add_column(col)
    all_healthy = True
    for service in _select(stack, names, with_airflow):
        st = service.status()
        all_healthy &= st.healthy
        colour = {"healthy": "green", "unhealthy": "yellow", "stopped": "red"}[st.state]
        table.add_row(
            st.name,
            f"[{colour}]{st.state}[/]",
            str(st.pid or "-"),
            st.address,
            st.detail,
            st.log_file,
        )
    console.print(table)
    return all_healthy


@services_app.command("up")
def services_up(names: Names = None, with_airflow: WithAirflow = False) -> None:
    """Start the services that are not running and wait until each is healthy."""
    stack = _stack()
    for service in _select(stack, names, with_airflow):
        t0 = time.monotonic()
        with console.status(f"starting {service.name} ..."):
            try:
                started = service.start()
            except ServiceError as exc:
                console.print(f"[red]{exc}[/]")
                raise typer.Exit(1) from exc
        verb = "started" if started else "already running"
        console.print(
            f"{service.name}: {verb}, healthy in {time.monotonic() - t0:.1f} s ({service.address})"
        )
    _print_status(stack, names, with_airflow)


@services_app.command("down")
def services_down(
    names: Names = None,
    with_airflow: Annotated[bool, typer.Option("--airflow/--no-airflow")] = True,
) -> None:
    """Stop the services (Airflow too, unless --no-airflow), in reverse order."""
    stack = _stack()
    for service in reversed(_select(stack, names, with_airflow)):
        stopped = service.stop()
        console.print(f"{service.name}: {'stopped' if stopped else 'was not running'}")


@services_app.command("status")
def services_status(
    names: Names = None,
    with_airflow: Annotated[bool, typer.Option("--airflow/--no-airflow")] = True,
) -> None:
    """Show each service's state, PID, address and log; exit 1 if one is not healthy."""
    if not _print_status(_stack(), names, with_airflow):
        raise typer.Exit(1)


if __name__ == "__main__":  # pragma: no cover
    app()
