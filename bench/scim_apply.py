"""SCIM apply throughput against the target's raw capacity, and the planner at scale.

1. 10,000 user creates to a fresh scim2-server target through the executor (plan,
   caps, retries, links and audit in a SQLite state store), against the target's raw
   capacity measured in the same run: a bare client sending the same POSTs with the
   same concurrency to another fresh target. Goal: at least 0.8x raw.
2. The planner on 1,000,000 users with 1% changed: from stored links (hashes, the
   stream's path) and against the actual state (the resync's path). Goal: under 10 s
   and 2 GB.

    .venv/bin/python bench/scim_apply.py [--users 10000] [--plan-users 1000000]
"""

from __future__ import annotations

import argparse
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scimflow.scim.apply import Executor
from scimflow.scim.client import ScimTarget
from scimflow.scim.plan import plan_users
from scimflow.services.process import wait_until
from scimflow.state.store import StateStore

from tests.support.desired import desired_user

TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    exe = Path(sys.executable).parent / "scim2-server"
    proc = subprocess.Popen(
        [str(exe), "--port", str(port), f"--bearer-token={TOKEN}", "--dynamic-tenants"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def answers() -> bool:
        try:
            httpx.get(f"http://127.0.0.1:{port}/probe/v2/ServiceProviderConfig", timeout=1)
        except httpx.HTTPError:
            return False
        return True

    if not wait_until(answers, timeout=10, interval=0.1, alive=lambda: proc.poll() is None):
        raise SystemExit("scim2-server did not start")
    return proc, port


def raw_capacity(base: str, payloads: list[dict], concurrency: int) -> float:
    """The bare client: the same POSTs, same concurrency, nothing else."""
    local = threading.local()

    def post(payload: dict) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(headers={"Authorization": f"Bearer {TOKEN}"})
        resp = client.post(
            f"{base}/Users", json=payload, headers={"Content-Type": "application/scim+json"}
        )
        assert resp.status_code == 201, resp.text

    t0 = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, payloads))
    return len(payloads) / (time.monotonic() - t0)


def apply_rate(base: str, desired: dict, concurrency: int, state_dir: Path) -> tuple[float, int]:
    target = ScimTarget(
        "bench", base, headers={"Authorization": f"Bearer {TOKEN}"}, max_connections=concurrency
    )
    target.discover()
    store = StateStore(f"sqlite:///{state_dir / 'state.db'}")
    store.migrate()
    t0 = time.monotonic()
    plan = plan_users(
        "bench", desired, store.links("bench", "User"), list(target.list_resources("Users"))
    )
    result = Executor(
        target,
        store,
        run_id="bench",
        cause="bench",
        concurrency=concurrency,
    ).apply(plan)
    elapsed = time.monotonic() - t0
    target.close()
    assert not result.failed and not result.parked, (result.failed[:3], result.parked[:3])
    return len(desired) / elapsed, len(store.links("bench", "User"))


def planner(n: int) -> None:
    print(f"\nplanner on {n:,} users, 1% changed")
    t0 = time.monotonic()
    desired = {d.okta_id: d for d in (desired_user(i, "Engineer", "Sales", True) for i in range(n))}

    class L:
        __slots__ = ("pushed_hash", "scim_id")

        def __init__(self, scim_id: str, pushed_hash: str) -> None:
            self.scim_id, self.pushed_hash = scim_id, pushed_hash

    links = {oid: L(f"s{i}", d.fingerprint) for i, (oid, d) in enumerate(desired.items())}
    actual = [{**d.payload, "id": f"s{i}"} for i, d in enumerate(desired.values())]
    changed = list(desired)[::100]
    for oid in changed:
        desired[oid] = desired_user(int(oid[3:]), "Manager", "Sales", True)
    print(
        f"  building {n:,} desired users, links and actual resources: {time.monotonic() - t0:.1f} s"
    )
    import psutil

    me = psutil.Process()
    inputs = me.memory_info().rss / 2**20
    print(f"  inputs held in memory: {inputs:,.0f} MiB (desired users, links, actual resources)")
    for name, kwargs in (
        ("from links (stream)", {"actual": None}),
        ("against actual (resync)", {"actual": actual}),
    ):
        t0 = time.monotonic()
        plan = plan_users("bench", desired, links, **kwargs)
        elapsed = time.monotonic() - t0
        assert plan.counts() == {"update": len(changed)}, plan.counts()
        grown = me.memory_info().rss / 2**20 - inputs
        print(f"  plan {name:26} {elapsed:6.2f} s  {len(plan.operations):,} ops, +{grown:,.0f} MiB")
        del plan
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"  peak memory of the process: {peak:,.0f} MiB (goal for the planner: under 10 s and 2 GB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--plan-users", type=int, default=1_000_000)
    args = parser.parse_args()

    desired = {
        d.okta_id: d
        for d in (desired_user(i, "Engineer", "Sales", True) for i in range(args.users))
    }
    proc, port = start_server()
    try:
        raw = raw_capacity(
            f"http://127.0.0.1:{port}/raw{uuid.uuid4().hex[:6]}/v2",
            [d.payload for d in desired.values()],
            args.concurrency,
        )
        with tempfile.TemporaryDirectory() as tmp:
            rate, linked = apply_rate(
                f"http://127.0.0.1:{port}/app{uuid.uuid4().hex[:6]}/v2",
                desired,
                args.concurrency,
                Path(tmp),
            )
    finally:
        proc.terminate()
        proc.wait(30)
    print(f"{args.users:,} creates, concurrency {args.concurrency}")
    print(f"  raw capacity (bare client): {raw:8.1f} creates/s")
    print(
        f"  scimflow executor:          {rate:8.1f} creates/s  ({rate / raw:.2f}x raw; "
        f"goal >= 0.8x), {linked:,} links stored"
    )
    if args.plan_users:
        planner(args.plan_users)


if __name__ == "__main__":
    main()
