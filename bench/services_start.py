"""How long the local services take to start, and how much memory the stack holds.

Prints, in one run:
- Kafka cold start (empty jar cache: Maven download, storage format, start, health,
  topics), cached start (jars cached, new storage), and restart (same storage);
- the baseline for those: the bare broker JVM from launch to an open port, with the
  same jars and config, measured in the same run;
- each service's memory (PSS) with the stack up, and with ``--airflow`` Airflow
  standalone too (parallelism 4).

Runs in a temporary home on free ports; stops everything it started.

    .venv/bin/python bench/services_start.py [--airflow] [--keep-cache]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from scimflow.services import Stack
from scimflow.services.kafka import port_open, resolve_kafka_jars
from scimflow.services.process import wait_until
from scimflow.services.settings import ServicesSettings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_for(home: Path, cache: Path) -> ServicesSettings:
    return ServicesSettings(
        home=home,
        cache=cache,
        dags_folder=Path(__file__).resolve().parents[1] / "dags",
        kafka_port=free_port(),
        kafka_controller_port=free_port(),
        postgres_port=free_port(),
        scim_ports={"scim-a": free_port(), "scim-b": free_port()},
        airflow_port=free_port(),
        okta_port=free_port(),
        receiver_port=free_port(),
    )


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0


def bare_broker_start(stack: Stack) -> float:
    """Baseline: launch the broker JVM on prepared storage, time until its port opens."""
    kafka = stack.kafka
    lib = resolve_kafka_jars(stack.settings.cache)
    argv = kafka._java(lib, "kafka.Kafka", str(kafka.config_file), heap="512m")
    log = (stack.settings.logs / "bare-kafka.log").open("ab")
    t0 = time.monotonic()
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        ok = wait_until(
            lambda: port_open("127.0.0.1", stack.settings.kafka_port), timeout=90, interval=0.05
        )
        elapsed = time.monotonic() - t0
        assert ok, "bare broker did not open its port"
        return elapsed
    finally:
        proc.terminate()
        proc.wait(60)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--airflow", action="store_true", help="also start Airflow standalone")
    parser.add_argument(
        "--keep-cache", action="store_true", help="skip the cold start (reuse ~/.cache/scimflow)"
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="scimflow-bench-"))
    work.chmod(0o755)
    default_cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "scimflow"
    cache = default_cache if args.keep_cache else work / "cache"
    rows: list[tuple[str, float]] = []
    stacks: list[Stack] = []
    try:
        if not args.keep_cache:
            cold = Stack(settings_for(work / "cold", cache))
            stacks.append(cold)
            rows.append(("kafka cold start (download + format + start)", timed(cold.kafka.start)))
            cold.kafka.stop()
        warm = Stack(settings_for(work / "warm", cache))
        stacks.append(warm)
        rows.append(("kafka cached start (format + start)", timed(warm.kafka.start)))
        rows.append(("kafka stop", timed(warm.kafka.stop)))
        rows.append(("kafka restart (same storage)", timed(warm.kafka.start)))
        warm.kafka.stop()
        rows.append(("baseline: bare broker JVM to open port", bare_broker_start(warm)))
        for service in warm.select(None, with_airflow=args.airflow):
            rows.append((f"{service.name} start to healthy", timed(service.start)))

        print(f"{'measure':50} {'seconds':>8}")
        for name, seconds in rows:
            print(f"{name:50} {seconds:8.2f}")
        print()
        total = 0
        print(f"{'service':12} {'memory (PSS, MiB)':>18}")
        for service in warm.select(None, with_airflow=args.airflow):
            mem = service.process.memory_bytes()
            total += mem
            print(f"{service.name:12} {mem / 2**20:18.0f}")
        print(f"{'total':12} {total / 2**20:18.0f}")
    finally:
        for stack in stacks:
            for service in reversed(list(stack.services.values())):
                service.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
