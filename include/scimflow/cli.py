"""The ``scimflow`` command line."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from scimflow.errors import ScimflowError, ServiceError
from scimflow.services import Service, ServicesSettings, Stack
from scimflow.state.cli import audit_app, db_app

if TYPE_CHECKING:
    from scimflow.demo import ResyncOutcome
    from scimflow.scim.report import TargetReport

app = typer.Typer(help="Keep SCIM 2.0 applications equal to Okta.", no_args_is_help=True)
services_app = typer.Typer(
    help="Local services: Kafka, PostgreSQL, SCIM targets, Airflow.", no_args_is_help=True
)
app.add_typer(services_app, name="services")
okta_app = typer.Typer(help="Read Okta through the official SDK.", no_args_is_help=True)
app.add_typer(okta_app, name="okta")
emulator_app = typer.Typer(help="The local Okta emulator.", no_args_is_help=True)
app.add_typer(emulator_app, name="okta-emulator")
stream_app = typer.Typer(help="The real-time path, without Airflow.", no_args_is_help=True)
app.add_typer(stream_app, name="stream")
app.add_typer(audit_app, name="audit")
app.add_typer(db_app, name="db")

# a wide table when piped (logs, CI), the terminal's width otherwise
console = Console(width=None if sys.stdout.isatty() else 160)

Names = Annotated[
    list[str] | None,
    typer.Argument(
        help=(
            "Services (kafka, postgres, okta, receiver, scim-a, scim-b, airflow); "
            "default: all but airflow."
        )
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
    for col in ("service", "state", "pid", "memory", "address", "detail", "log"):
        table.add_column(col)
    all_healthy = True
    total_memory = 0
    for service in _select(stack, names, with_airflow):
        st = service.status()
        all_healthy &= st.healthy
        colour = {"healthy": "green", "unhealthy": "yellow", "stopped": "red"}[st.state]
        total_memory += st.memory_bytes
        table.add_row(
            st.name,
            f"[{colour}]{st.state}[/]",
            str(st.pid or "-"),
            f"{st.memory_bytes / 2**20:.0f} MiB" if st.pid else "-",
            st.address,
            st.detail,
            st.log_file,
        )
    table.caption = f"memory (PSS) of the running services: {total_memory / 2**20:.0f} MiB"
    console.print(table)
    return all_healthy


@services_app.command("up")
def services_up(names: Names = None, with_airflow: WithAirflow = False) -> None:
    """Start the services that are not running and wait until each is healthy.

    If one fails to start, the services this command started are stopped again (those
    that were already running are left as they were), so a failed start leaves nothing
    behind.
    """
    stack = _stack()
    started: list[Service] = []
    for service in _select(stack, names, with_airflow):
        t0 = time.monotonic()
        with console.status(f"starting {service.name} ..."):
            try:
                if service.start():
                    started.append(service)
            except ServiceError as exc:
                console.print(f"[red]{exc}[/]")
                _stop_after_failure(service, started)
                raise typer.Exit(1) from exc
            except KeyboardInterrupt:
                console.print("interrupted: stopping what this command started")
                _stop_after_failure(service, started)
                raise
        verb = "started" if service in started else "already running"
        console.print(
            f"{service.name}: {verb}, healthy in {time.monotonic() - t0:.1f} s ({service.address})"
        )
    _print_status(stack, names, with_airflow)


def _stop_after_failure(failed: Service, started: list[Service]) -> None:
    """Stop the service that failed (if its process runs) and those this command started."""
    for service in [failed, *reversed(started)]:
        try:
            if service.stop():
                console.print(f"{service.name}: stopped (the start failed)")
        except ScimflowError as exc:  # stopping the rest matters more than this one
            console.print(f"[yellow]{service.name}: could not stop it: {exc}[/]")


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


@app.command("demo")
def demo(
    wait: Annotated[
        bool,
        typer.Option(
            "--wait/--no-wait",
            help="Keep running until Ctrl-C, then stop everything (--no-wait: leave it running).",
        ),
    ] = True,
    dag_id: Annotated[str, typer.Option(help="The DAG the demo runs.")] = "okta_resync",
    stream_seconds: Annotated[
        float, typer.Option(help="Seconds of churn for the real-time part (0: skip it).")
    ] = 30.0,
    stream_rate: Annotated[float, typer.Option(help="Directory changes a second.")] = 2.0,
) -> None:
    """Start the whole local stack with Airflow, run the demo DAG, report, keep running."""
    from scimflow.demo import AirflowApi, run_resync

    stack = _stack()
    services_up(names=None, with_airflow=True)
    api = AirflowApi(stack.airflow)
    try:
        if stream_seconds > 0:
            # unpaused early: its doorbell watcher registers at the file's next parse
            api.wait_for_dag("okta_events")
            api.unpause("okta_events")

        def started(run_id: str, how: str) -> None:
            if how == "scheduled":
                console.print(
                    f"unpausing {dag_id} made Airflow schedule its due interval: run {run_id}; "
                    "the demo follows that run instead of triggering another; waiting ..."
                )
            else:
                console.print(f"triggered {dag_id} run {run_id}; waiting ...")

        outcome = run_resync(api, dag_id, on_start=started)
    finally:
        api.close()
    _print_resync(outcome, dag_id)
    console.print(
        f"Airflow UI: {stack.airflow.address}  login: admin / "
        f"password in {stack.settings.secrets / 'airflow-admin.password'}"
    )
    console.print(f"service logs: {stack.settings.logs}")
    if any(run.result.state != "success" for run in outcome.runs):
        raise typer.Exit(1)
    if stream_seconds > 0:
        from scimflow.demo import stream_phase

        console.print(
            f"real time: okta_events unpaused; the emulator changes the directory "
            f"{stream_rate:g} times a second for {stream_seconds:g} s (Event Hooks → receiver "
            "→ Kafka → okta_events) ..."
        )
        api = AirflowApi(stack.airflow)
        try:
            stream = stream_phase(api, stack.settings, rate=stream_rate, seconds=stream_seconds)
        finally:
            api.close()
        _print_stream(stream)
    if not wait:
        console.print("left running; stop with: make stop (or scimflow services down)")
        return
    console.print("running; Ctrl-C (or `make stop` elsewhere) stops everything")
    try:
        while stack.airflow.process.is_running():
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        services_down(names=None, with_airflow=True)


def _print_resync(outcome: ResyncOutcome, dag_id: str) -> None:
    """The run that did the work (its tasks, what each target got), named, and why it."""
    from scimflow.demo import describe_resync

    shown = outcome.shown
    result = shown.result
    table = Table(title=f"{dag_id} run {shown.run_id}: {result.state} in {result.seconds:.1f} s")
    table.add_column("task")
    table.add_column("state")
    for task_id, state in result.tasks:
        table.add_row(task_id, state)
    console.print(table)
    _print_target_summaries(shown.summaries, shown.report_path)
    for line in describe_resync(outcome, dag_id):
        console.print(escape(line), soft_wrap=True)  # one line each: easy to find in a log


def _print_stream(stream: dict[str, Any]) -> None:
    table = Table(
        title=f"real time: {stream['changes']} Okta changes, drained in {stream['seconds']} s"
    )
    for col in ("hook events delivered", "okta_events runs", "left on Kafka", "writes"):
        table.add_column(col)
    lat = stream.get("latency") or {}
    table.add_row(
        str(stream["delivered"]),
        ", ".join(f"{n} {state}" for state, n in sorted(stream["runs"].items())) or "none",
        str(stream["lag"]),
        ", ".join(f"{t}: {n}" for t, n in lat.get("per_target", {}).items()) or "none",
    )
    console.print(table)
    if lat:
        console.print(
            f"change → SCIM write latency: p50 {lat['p50_s']} s, p95 {lat['p95_s']} s, "
            f"p99 {lat['p99_s']} s, max {lat['max_s']} s"
        )
        if lat.get("earlier"):
            console.print(
                f"({lat['earlier']} writes caused by events published before this phase "
                "began are not counted)"
            )


def _print_target_summaries(summaries: list[dict[str, Any]], report_path: str | None) -> None:
    if not summaries:
        return
    table = Table(title="per target")
    for col in (
        "target",
        "created",
        "updated",
        "deactivated",
        "linked",
        "group writes",
        "parked",
        "seconds",
    ):
        table.add_column(col)
    for s in summaries:
        rows = s["rows"]
        table.add_row(
            s["target"],
            str(rows["created"]),
            str(rows["updated"]),
            str(rows["deactivated"] + rows["deleted"]),
            str(rows["linked"]),
            str(rows["groups"] + rows["members"]),
            str(rows["parked"]),
            str(s.get("seconds")),
        )
    console.print(table)
    if report_path:
        console.print(f"drift report: {report_path}")


@emulator_app.command("serve")
def emulator_serve(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8090,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    users: Annotated[int, typer.Option(help="Users to seed.")] = 2000,
    groups: Annotated[int, typer.Option(help="Groups to seed.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed of the generated organisation.")] = 0,
    time_scale: Annotated[
        float, typer.Option(help="Rate-limit windows last 60 s / scale; 1 is Okta's.")
    ] = 1.0,
    logs_limit: Annotated[
        int, typer.Option(help="System Log requests a minute (50, or 120).")
    ] = 50,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help=(
                "File holding the API token; created if absent. "
                "Default: SCIMFLOW_HOME/secrets/okta-emulator.token."
            )
        ),
    ] = None,
) -> None:
    """Serve a seeded Okta organisation (API token from SCIMFLOW_OKTA_TOKEN or a token file)."""
    import uvicorn

    from scimflow.okta.emulator.app import build_app
    from scimflow.okta.emulator.server import make_state
    from scimflow.services.settings import default_home, read_or_create_secret

    token = os.environ.get("SCIMFLOW_OKTA_TOKEN")
    where = "SCIMFLOW_OKTA_TOKEN"
    if not token:
        path = token_file or default_home() / "secrets" / "okta-emulator.token"
        token = read_or_create_secret(path)
        where = str(path)
    t0 = time.monotonic()
    state = make_state(
        users=users,
        groups=groups,
        seed=seed,
        token=token,
        port=port,
        host=host,
        time_scale=time_scale,
        logs_limit=logs_limit,
    )
    console.print(
        f"Okta emulator: {users} users, {groups} groups (seed {seed}) in "
        f"{time.monotonic() - t0:.1f} s; http://{host}:{port}; API token in {where}"
    )
    uvicorn.run(build_app(state), host=host, port=port, log_level="warning", access_log=False)


@app.command("receiver")
def receiver(
    config: Annotated[
        Path,
        typer.Option(
            "--config",
            envvar="SCIMFLOW_CONFIG",
            help="The scimflow YAML configuration, with receiver: and kafka: sections.",
        ),
    ],
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default: receiver.host).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on (default: receiver.port).")
    ] = None,
) -> None:
    """Serve the Okta Event Hook endpoint: verified, authenticated batches into Kafka."""
    import logging

    import uvicorn

    from scimflow.errors import ConfigError, ScimflowError
    from scimflow.receiver import create_app, receiver_sections
    from scimflow.scim.config import load_config

    try:
        rcv, kafka = receiver_sections(load_config(config), str(config))
        if rcv.tls_keyfile and not rcv.tls_certfile:
            raise ConfigError(str(config), "receiver.tls_keyfile: needs receiver.tls_certfile")
        app_ = create_app(rcv, kafka)
    except ScimflowError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    listen_host = host or rcv.host
    listen_port = port or rcv.port
    scheme = "https" if rcv.tls_certfile else "http"
    console.print(
        f"receiver: {scheme}://{listen_host}:{listen_port}{rcv.path} -> {kafka.topic} "
        f"at {kafka.bootstrap_servers} (dead letters: {kafka.dlq_topic})"
    )
    # no access log: it would record callers' addresses; the app logs ids and counts
    uvicorn.run(
        app_,
        host=listen_host,
        port=listen_port,
        ssl_certfile=rcv.tls_certfile,
        ssl_keyfile=rcv.tls_keyfile,
        log_level="info",
        access_log=False,
        lifespan="on",
    )


@okta_app.command("export")
def okta_export(
    out: Annotated[Path, typer.Option(help="Folder for users, groups and memberships (Parquet).")],
    org_url: Annotated[str, typer.Option(envvar="OKTA_ORG_URL", help="The Okta org URL.")],
    page_size: Annotated[int, typer.Option(help="Users per page (Okta's maximum: 200).")] = 200,
    concurrency: Annotated[int, typer.Option(help="Requests in flight at most.")] = 4,
) -> None:
    """Export every user, group and membership (the API token comes from OKTA_API_TOKEN)."""
    from scimflow.errors import OktaError
    from scimflow.okta.source import OktaExport, OktaSettings, OktaSource

    token = os.environ.get("OKTA_API_TOKEN", "")
    if not token:
        raise typer.BadParameter("set OKTA_API_TOKEN (never passed as an argument)")
    settings = OktaSettings(
        org_url=org_url, token=token, page_size=page_size, concurrency=concurrency
    )

    async def run() -> tuple[OktaExport, float]:
        async with OktaSource(settings) as source:
            return await source.export(), source.pacer.waited

    try:
        export, waited = asyncio.run(run())
    except OktaError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from exc
    out.mkdir(parents=True, exist_ok=True)
    export.users.to_parquet(out / "users.parquet", index=False)
    export.groups.to_parquet(out / "groups.parquet", index=False)
    export.memberships.to_parquet(out / "memberships.parquet", index=False)
    console.print(
        f"exported {len(export.users)} users, {len(export.groups)} groups, "
        f"{len(export.memberships)} memberships in {export.seconds:.1f} s with "
        f"{export.requests} requests ({waited:.1f} s paced) to {out}"
    )


@stream_app.command("once")
def stream_once(
    config: Annotated[Path, typer.Option("--config", help="The scimflow YAML configuration.")],
    max_events: Annotated[
        int | None, typer.Option(help="At most this many events (default: kafka.batch_max).")
    ] = None,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the batch's files go (default: SCIMFLOW_DATA, else SCIMFLOW_HOME/data)."
        ),
    ] = None,
) -> None:
    """One micro-batch from okta.events to every target, offsets committed at the end."""
    import uuid

    from scimflow.errors import ScimflowError
    from scimflow.scim.config import load_config
    from scimflow.services.settings import default_home
    from scimflow.stream.batch import batch_dir, run_once

    run_id = f"cli-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    # never the current folder: the stack's data folder (Airflow's SCIMFLOW_DATA) by default
    base = data_dir or Path(os.environ.get("SCIMFLOW_DATA") or default_home() / "data")
    try:
        cfg = load_config(config)
        result = run_once(
            cfg,
            batch_dir(str(base), run_id),
            run_id=run_id,
            max_events=max_events,
        )
    except ScimflowError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(2) from exc
    console.print(
        f"read {result['read']} events ({result['dead_lettered']} dead-lettered); "
        f"committed {result['finish']['offsets']}"
    )
    table = Table(title=f"batch {run_id}")
    for col in ("target", "writes", "parked", "unavailable", "seconds"):
        table.add_column(col)
    for t in result.get("targets", []):
        table.add_row(
            t["target"],
            str(t["writes"]),
            ", ".join(f"{k} {n}" for k, n in sorted(t["parked"].items())) or "0",
            "yes" if t.get("unavailable") else "no",
            str(t["seconds"]),
        )
    console.print(table)


@app.command("sync")
def sync(
    config: Annotated[Path, typer.Option("--config", help="The scimflow YAML configuration.")],
    targets: Annotated[
        list[str] | None, typer.Option("--target", help="Only this target (repeatable).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan, write nothing.")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="Override the deletion guard.")] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Keep the snapshot and its data-quality report here (default: a temporary "
            "folder, removed at the end: the snapshot holds personal data)."
        ),
    ] = None,
) -> None:
    """One full reconcile from Okta to the targets, without Airflow: the okta_resync DAG's
    stages (export, great-expectations validation, one reconcile per target)."""
    import tempfile
    import uuid
    from concurrent.futures import ThreadPoolExecutor

    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from scimflow.fanout import select_targets
    from scimflow.resync import (
        export_snapshot,
        reconcile_snapshot,
        snapshot_dir,
        target_config_of,
        validate_snapshot,
    )
    from scimflow.runtime import open_store
    from scimflow.scim.config import load_config

    cfg = load_config(config)
    chosen = [target_config_of(cfg, name) for name in select_targets(cfg, targets or ())]
    with open_store(cfg):  # a state store that cannot be used fails now, not after the export
        pass
    run_id = f"cli-{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"
    with tempfile.TemporaryDirectory(prefix="scimflow-sync-") as scratch:
        snapshot = snapshot_dir(str(data_dir), run_id) if data_dir else Path(scratch)
        with console.status("exporting Okta ..."):
            exported = export_snapshot(cfg, snapshot)
        console.print(
            f"Okta: {exported['users']} users, {exported['groups']} groups, "
            f"{exported['memberships']} memberships ({exported['requests']} requests, "
            f"{exported['seconds']} s)"
        )
        with console.status("validating (great-expectations) ..."):
            quality = validate_snapshot(snapshot)
        console.print(
            f"data quality: {quality['quarantined_users']} users and "
            f"{quality['quarantined_groups']} groups quarantined"
            + (f"; report: {quality['report']}" if data_dir else "")
        )
        reports: dict[str, TargetReport | Exception] = {}
        with Progress(
            SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), console=console
        ) as progress:
            tasks = {t.name: progress.add_task(f"{t.name}: starting", total=None) for t in chosen}

            def one(name: str) -> None:
                def say(msg: str) -> None:
                    progress.update(tasks[name], description=msg)

                try:
                    reports[name] = reconcile_snapshot(
                        cfg,
                        name,
                        snapshot,
                        run_id=run_id,
                        cause=f"sync:{run_id}",
                        dry_run=dry_run,
                        force=force,
                        on_progress=say,
                    )
                    say(f"{name}: done")
                except ScimflowError as exc:
                    reports[name] = exc
                    say(f"{name}: [red]failed[/]")

            with ThreadPoolExecutor(max_workers=max(1, len(chosen))) as pool:
                list(pool.map(one, [t.name for t in chosen]))
    _print_reports(reports, dry_run)
    if any(isinstance(r, Exception) or r.failed for r in reports.values()):
        raise typer.Exit(1)


REPORT_COLUMNS = (
    "created",
    "linked",
    "updated",
    "deactivated",
    "deleted",
    "groups",
    "members",
    "parked",
    "failed",
)


def _print_reports(reports: Mapping[str, TargetReport | Exception], dry_run: bool) -> None:
    title = "plan (dry run: nothing written)" if dry_run else "sync"
    table = Table(title=title)
    for col in ("target", *REPORT_COLUMNS, "seconds"):
        table.add_column(col)
    for name, report in sorted(reports.items()):
        if isinstance(report, Exception):
            table.add_row(
                name, *["-"] * (len(REPORT_COLUMNS) - 1), f"[red]{escape(str(report))}[/]"
            )
            continue
        rows = report.rows()
        table.add_row(name, *(str(rows[c]) for c in REPORT_COLUMNS), f"{report.seconds:.1f}")
    console.print(table)
    for name, report in sorted(reports.items()):
        if isinstance(report, Exception):
            continue
        if report.parked:
            kinds = ", ".join(f"{k} {n}" for k, n in sorted(report.parked.items()))
            console.print(f"  {name}: parked {kinds}")
        if not dry_run:
            continue
        for plan in report.plans:
            for op in plan.operations[:50]:
                console.print(f"  {name}: {op.action} {op.kind} {op.okta_id} {op.reason}")
            if len(plan.operations) > 50:
                console.print(f"  {name}: ... {len(plan.operations) - 50} more")


def main() -> None:
    """The ``scimflow`` command: a scimflow error (bad configuration, a service that cannot
    be reached, a refused token) is one line naming what and why, exit status 2, not a
    traceback. Its messages are written to be shown: they never hold a secret's value."""
    from rich.markup import escape

    from scimflow.errors import ScimflowError

    try:
        app()
    except ScimflowError as exc:
        Console(stderr=True, width=None if sys.stderr.isatty() else 160).print(
            f"[red]error:[/] {escape(str(exc))}", highlight=False
        )
        raise SystemExit(2) from None


if __name__ == "__main__":  # pragma: no cover
    main()
