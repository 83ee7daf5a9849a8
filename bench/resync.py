"""A full resync (the okta_resync DAG's stages) of N users to two SCIM targets.

For each size, from empty targets and then again once they are converged: the wall time
of each stage (export from the Okta emulator at Okta's default limits, great-expectations
validation, and per target: mapping, reading the target, planning, applying), and each
stage's peak memory (the RSS high-water mark of the process that ran it; every stage
runs in its own process, as in the DAG, and the two targets in parallel, as the DAG's
mapped tasks). The code is the DAG's: ``scimflow.resync.export_snapshot``,
``validate_snapshot`` and ``sync_from_snapshot``, with a SQLite state store in a
temporary folder. Targets are two ``scim2-server`` processes.

Baselines measured in the same run:
(a) the Okta rate-limit bound of the export (for each endpoint family, requests needed ÷
    its per-minute limit, the largest), as bench/okta_export.py computes it;
(b) the targets' raw capacity: a bare client sending the same POSTs (to two fresh
    scim2-server processes, in parallel, same concurrency) and the same paged GETs
    (startIndex/count, same page size, both targets in parallel) as the resync.

Goal: 100,000 users already converged, within 1.5x of the rate-limit bound, under 2 GB.

    .venv/bin/python bench/resync.py [--users 10000,100000] [--groups 100] [--no-raw]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from scimflow.services.process import wait_until

LIMITS = {"users_list": 600, "groups": 600, "group_one": 600, "user_get": 1000, "logs": 50}
OKTA_TOKEN = "bench-token"
SCIM_TOKEN = "bench-scim-token"
TARGETS = ("scim-a", "scim-b")
CONCURRENCY = 4
PAGE = 1000  # what ScimTarget.list_resources asks of a server whose maxResults is 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bound_seconds(requests_by_family: dict[str, int]) -> float:
    return max((n / LIMITS[f] * 60 for f, n in requests_by_family.items() if n), default=0.0)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- stages, each in its own process ------------------------------------------------------
def child(args: argparse.Namespace) -> dict[str, Any]:
    if args.child == "export":
        from scimflow.resync import export_snapshot, load_config

        config = load_config(args.config)
        t0 = time.monotonic()
        out = export_snapshot(config, Path(args.snapshot))
        return {**out, "wall": time.monotonic() - t0}
    if args.child == "validate":
        from scimflow.resync import validate_snapshot

        t0 = time.monotonic()
        out = validate_snapshot(Path(args.snapshot))
        return {**out, "wall": time.monotonic() - t0}
    if args.child == "sync":
        return sync_child(args)
    if args.child == "raw-post":
        return raw_post_child(args)
    if args.child == "raw-get":
        return raw_get_child(args)
    raise SystemExit(f"unknown stage {args.child}")


def sync_child(args: argparse.Namespace) -> dict[str, Any]:
    """The resync's reconcile of one target; the report gives its stage times."""
    from scimflow.resync import load_config, reconcile_snapshot

    config = load_config(args.config)
    t0 = time.monotonic()
    report = reconcile_snapshot(config, args.target, Path(args.snapshot), run_id=args.run_id)
    wall = time.monotonic() - t0
    summary = report.to_xcom()
    summary.pop("plan", None)
    stages = dict(report.stages)
    stages["load"] = round(wall - report.seconds, 3)  # Parquet, quarantine, state store
    return {**summary, "wall": wall, "stages": stages}


def raw_post_child(args: argparse.Namespace) -> dict[str, Any]:
    """The bare client: the mapped users' payloads, POSTed with the same concurrency."""
    import pandas as pd
    from scimflow.resync import load_config
    from scimflow.scim.mapping import map_users

    config = load_config(args.config)
    users = pd.read_parquet(Path(args.snapshot) / "users.parquet")
    users = users[~users["deleted"].fillna(False).astype(bool)]
    mapped = map_users(users, config.targets[0])
    payloads = [d.payload for d in mapped.users.values()][: args.count]
    del mapped, users
    local = threading.local()

    def post(payload: dict[str, Any]) -> None:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(
                headers={"Authorization": f"Bearer {SCIM_TOKEN}"}, timeout=120
            )
        resp = client.post(
            f"{args.url}/Users", json=payload, headers={"Content-Type": "application/scim+json"}
        )
        assert resp.status_code == 201, resp.text

    t0 = time.monotonic()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(post, payloads))
    return {"posts": len(payloads), "wall": time.monotonic() - t0}


def raw_get_child(args: argparse.Namespace) -> dict[str, Any]:
    """The bare client: every user and group by startIndex/count, parsed, nothing else."""
    client = httpx.Client(headers={"Authorization": f"Bearer {SCIM_TOKEN}"}, timeout=600)
    t0 = time.monotonic()
    counts = {}
    for endpoint in ("Users", "Groups"):
        start, seen, pages = 1, 0, 0
        while True:
            page = client.get(
                f"{args.url}/{endpoint}", params={"startIndex": start, "count": PAGE}
            ).json()
            resources = page.get("Resources") or []
            pages += 1
            seen += len(resources)
            if not resources or seen >= int(page.get("totalResults") or 0):
                break
            start += len(resources)
        counts[endpoint] = seen
        counts[f"{endpoint}_pages"] = pages
    return {**counts, "wall": time.monotonic() - t0}


def spawn(*argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def collect(proc: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = proc.communicate(timeout=6 * 3600)
    if proc.returncode != 0:
        raise SystemExit(f"stage {proc.args} failed: {err[-3000:]}")
    return dict(json.loads(out.strip().splitlines()[-1]))


def run_child(*argv: str) -> dict[str, Any]:
    t0 = time.monotonic()
    result = collect(spawn(*argv))
    result["process_wall"] = time.monotonic() - t0
    return result


def run_parallel(argvs: list[tuple[str, ...]]) -> tuple[list[dict[str, Any]], float]:
    t0 = time.monotonic()
    procs = [spawn(*argv) for argv in argvs]
    results = [collect(p) for p in procs]
    return results, time.monotonic() - t0


# -- services ---------------------------------------------------------------------------------
class Emulator:
    def __init__(self, users: int, groups: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        scimflow = Path(sys.executable).parent / "scimflow"
        env = {**os.environ, "SCIMFLOW_OKTA_TOKEN": OKTA_TOKEN}
        self.proc = subprocess.Popen(
            [
                str(scimflow),
                "okta-emulator",
                "serve",
                "--port",
                str(self.port),
                "--users",
                str(users),
                "--groups",
                str(groups),
                "--seed",
                "1",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_until(self.healthy, timeout=600, interval=0.5, alive=self.running):
            raise SystemExit("the emulator did not start")

    def running(self) -> bool:
        return self.proc.poll() is None

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def rate_limited(self) -> int:
        return int(httpx.get(f"{self.url}/healthz", timeout=30).json()["rate_limited"])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


class ScimServer:
    """One scim2-server process (in memory); the target is its tenant ``/app/v2``."""

    def __init__(self) -> None:
        self.port = free_port()
        exe = Path(sys.executable).parent / "scim2-server"
        self.proc = subprocess.Popen(
            [
                str(exe),
                "--port",
                str(self.port),
                f"--bearer-token={SCIM_TOKEN}",
                "--dynamic-tenants",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}/app/v2"
        if not wait_until(self.answers, timeout=20, interval=0.1, alive=self.running):
            raise SystemExit("scim2-server did not start")

    def running(self) -> bool:
        return self.proc.poll() is None

    def answers(self) -> bool:
        try:
            httpx.get(f"{self.url}/ServiceProviderConfig", timeout=1)
        except httpx.HTTPError:
            return False
        return True

    def rss_mib(self) -> float:
        import psutil

        return float(psutil.Process(self.proc.pid).memory_info().rss) / 2**20

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def write_config(path: Path, okta_url: str, servers: list[ScimServer], state: Path) -> None:
    targets = [
        {
            "name": name,
            "base_url": server.url,
            "auth": {"type": "bearer", "token": {"env": "BENCH_SCIM_TOKEN"}},
            "concurrency": CONCURRENCY,
            "requests_per_second": 10_000,  # the target's capacity is what is measured
            "deletion_guard": {"max_share": 0.1, "min_users": 10},
        }
        for name, server in zip(TARGETS, servers, strict=True)
    ]
    config = {
        "okta": {"org_url": okta_url, "token": {"env": "BENCH_OKTA_TOKEN"}},
        "state": {"url": f"sqlite:///{state}"},
        "targets": targets,
    }
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML


# -- one resync -----------------------------------------------------------------------------
def resync(work: Path, config: Path, name: str, emulator: Emulator) -> dict[str, Any]:
    snapshot = work / f"snapshot-{name}"
    refused = emulator.rate_limited()
    export = run_child("--child", "export", "--config", str(config), "--snapshot", str(snapshot))
    export["refused"] = emulator.rate_limited() - refused
    validate = run_child("--child", "validate", "--snapshot", str(snapshot))
    syncs, sync_wall = run_parallel(
        [
            (
                "--child",
                "sync",
                "--config",
                str(config),
                "--target",
                target,
                "--snapshot",
                str(snapshot),
                "--run-id",
                f"bench-{name}",
            )
            for target in TARGETS
        ]
    )
    return {"export": export, "validate": validate, "syncs": syncs, "sync_wall": sync_wall}


def raw_posts(work: Path, config: Path, snapshot: Path, count: int) -> list[dict[str, Any]]:
    servers = [ScimServer() for _ in TARGETS]
    try:
        results, _ = run_parallel(
            [
                (
                    "--child",
                    "raw-post",
                    "--config",
                    str(config),
                    "--snapshot",
                    str(snapshot),
                    "--url",
                    s.url,
                    "--count",
                    str(count),
                )
                for s in servers
            ]
        )
    finally:
        for s in servers:
            s.close()
    return results


def raw_gets(servers: list[ScimServer]) -> list[dict[str, Any]]:
    results, _ = run_parallel([("--child", "raw-get", "--url", s.url) for s in servers])
    return results


def bench(size: int, groups: int, raw: bool) -> dict[str, Any]:
    print(
        f"\n== {size:,} users, {groups} groups: starting the emulator and two targets", flush=True
    )
    emulator = Emulator(size, groups)
    servers = [ScimServer() for _ in TARGETS]
    out: dict[str, Any] = {"size": size}
    try:
        with tempfile.TemporaryDirectory(prefix="scimflow-bench-") as tmp:
            work = Path(tmp)
            config = work / "scimflow.yaml"
            write_config(config, emulator.url, servers, work / "state.db")
            for name in ("empty", "converged"):
                print(f"   resync, targets {name} ...", flush=True)
                out[name] = resync(work, config, name, emulator)
                report(size, name, out[name])
                if name == "empty":
                    out["server_mib"] = [s.rss_mib() for s in servers]
                    creates = [
                        int(s["results"].get("create:applied", 0)) for s in out[name]["syncs"]
                    ]
                    if raw and max(creates):
                        print(f"   raw capacity: {max(creates):,} bare POSTs ...", flush=True)
                        out["raw_post"] = raw_posts(
                            work, config, work / "snapshot-empty", max(creates)
                        )
            if raw:
                print("   raw capacity: bare paged GETs of the converged targets ...", flush=True)
                out["raw_get"] = raw_gets(servers)
    finally:
        for s in servers:
            s.close()
        emulator.close()
    return out


# -- the figures ----------------------------------------------------------------------------------
def export_bound(export: dict[str, Any]) -> float:
    need = {
        "users_list": math.ceil(int(export["users"]) / 200) + 1,
        "groups": 1,
        "group_one": int(export["groups"]),
    }
    return bound_seconds(need)


def report(size: int, name: str, r: dict[str, Any]) -> None:
    e, v = r["export"], r["validate"]
    bound = export_bound(e)
    print(
        f"   export {e['wall']:.1f} s ({e['requests']} requests, {e['refused']} 429s, bound "
        f"{bound:.1f} s), {e['peak_mib']:.0f} MiB; validate {v['wall']:.1f} s, "
        f"{v['peak_mib']:.0f} MiB; sync in parallel {r['sync_wall']:.1f} s",
        flush=True,
    )
    for s in r["syncs"]:
        stages = ", ".join(f"{k} {val:.1f}" for k, val in s["stages"].items())
        print(
            f"   {s['target']}: {s['wall']:.1f} s ({stages}); writes {s['writes']}, "
            f"{s['peak_mib']:.0f} MiB",
            flush=True,
        )


def total(r: dict[str, Any]) -> float:
    """Export + validate + the slower target's sync, each timed inside its process."""
    return float(r["export"]["wall"] + r["validate"]["wall"] + max(s["wall"] for s in r["syncs"]))


def peak(r: dict[str, Any]) -> float:
    """The largest RSS high-water mark among the resync's processes."""
    stages = [r["export"], r["validate"], *r["syncs"]]
    return float(max(x["peak_mib"] for x in stages))


STAGES = {
    "load": "load (Parquet, quarantine, state store)",
    "desired": "desired state (map Okta → SCIM, scim2-models)",
    "read_users": "read users (alongside the mapping)",
    "wait_read_users": "read users not hidden by the mapping",
    "plan_users": "plan users",
    "apply_users": "apply users",
    "read_groups": "read groups",
    "plan_groups": "plan groups",
    "apply_groups": "apply groups",
}


def table(results: list[dict[str, Any]]) -> None:
    runs = [(r["size"], c, r[c]) for r in results for c in ("empty", "converged") if c in r]
    print("\nper stage: seconds (peak MiB of the stage's process)")
    print(f"{'stage':42}" + "".join(f"{f'{n:,} {c}':>20}" for n, c, _ in runs))

    def row(label: str, cells: list[str]) -> None:
        print(f"{label:42}" + "".join(f"{c:>20}" for c in cells))

    def cell(seconds: float, mib: float | None = None) -> str:
        return f"{seconds:.1f}" + (f" ({mib:,.0f})" if mib is not None else "")

    row(
        "export (Okta emulator)",
        [cell(x["export"]["wall"], x["export"]["peak_mib"]) for *_, x in runs],
    )
    row(
        "  requests, 429s",
        [f"{x['export']['requests']}, {x['export']['refused']}" for *_, x in runs],
    )
    row("  Okta rate-limit bound", [f"{export_bound(x['export']):.1f}" for *_, x in runs])
    row(
        "validate (great-expectations)",
        [cell(x["validate"]["wall"], x["validate"]["peak_mib"]) for *_, x in runs],
    )
    for i, target in enumerate(TARGETS):
        row(
            f"sync {target}",
            [cell(x["syncs"][i]["wall"], x["syncs"][i]["peak_mib"]) for *_, x in runs],
        )
        for stage, label in STAGES.items():
            row(f"  {label}", [cell(x["syncs"][i]["stages"].get(stage, 0.0)) for *_, x in runs])
        row("  writes", [f"{x['syncs'][i]['writes']:,}" for *_, x in runs])
    row("sync, both targets in parallel (wall)", [cell(x["sync_wall"]) for *_, x in runs])
    row("total: export + validate + slower sync", [cell(total(x)) for *_, x in runs])
    row(
        "total ÷ Okta rate-limit bound",
        [f"{total(x) / export_bound(x['export']):.2f}" for *_, x in runs],
    )
    row("largest process, peak MiB", [f"{peak(x):,.0f}" for *_, x in runs])
    print()
    for r in results:
        n = r["size"]
        if "server_mib" in r:
            mib = ", ".join(f"{m:,.0f}" for m in r["server_mib"])
            print(f"{n:,}: each scim2-server's RSS after the first resync (MiB): {mib}")
        for raw in r.get("raw_post", []):
            rate = raw["posts"] / raw["wall"]
            what = f"{raw['posts']:,} POST /Users in {raw['wall']:.1f} s"
            print(f"{n:,}: raw, bare client: {what} ({rate:.0f}/s)")
        if r.get("raw_post"):
            raw_wall = max(x["wall"] for x in r["raw_post"])
            for s in r["empty"]["syncs"]:
                creates = int(s["results"].get("create:applied", 0))
                apply = s["stages"]["apply_users"]
                print(
                    f"{n:,}: {s['target']}: {creates:,} creates applied in {apply:.1f} s "
                    f"({creates / apply:.0f}/s: {raw_wall / apply:.2f}x raw)"
                )
        for raw in r.get("raw_get", []):
            print(
                f"{n:,}: raw, bare client: GET {raw['Users']:,} users ({raw['Users_pages']} pages) "
                f"and {raw['Groups']} groups in {raw['wall']:.1f} s"
            )
        if r.get("raw_get") and "converged" in r:
            raw_wall = max(x["wall"] for x in r["raw_get"])
            for s in r["converged"]["syncs"]:
                read = s["stages"].get("read_users", 0.0) + s["stages"].get("read_groups", 0.0)
                print(
                    f"{n:,}: {s['target']}: read its users and groups in {read:.1f} s "
                    f"({read / raw_wall:.2f}x raw)"
                )


def goal(results: list[dict[str, Any]]) -> None:
    for r in results:
        if r["size"] != 100_000 or "converged" not in r:
            continue
        x = r["converged"]
        t, b, mib = total(x), export_bound(x["export"]), peak(x)
        time_ok = "met" if t <= 1.5 * b else "NOT met"
        memory_ok = "met" if mib < 2048 else "NOT met"
        print(
            f"\ngoal, 100,000 users already converged: {t:.1f} s, {t / b:.2f}x the Okta "
            f"rate-limit bound of {b:.1f} s (goal <= 1.5x: {time_ok}); "
            f"largest process {mib:,.0f} MiB (goal < 2 GB: {memory_ok})"
        )
        if r.get("raw_get"):
            floor = b + max(g["wall"] for g in r["raw_get"])
            print(
                f"  the bound plus the targets' raw read (a bare client's paged GETs, both in "
                f"parallel) is {floor:.1f} s: the resync takes {t / floor:.2f}x that"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="10000,100000", help="sizes, comma separated")
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--no-raw", action="store_true", help="skip the bare-client baselines")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--child")
    parser.add_argument("--config")
    parser.add_argument("--snapshot")
    parser.add_argument("--target")
    parser.add_argument("--run-id")
    parser.add_argument("--url")
    parser.add_argument("--count", type=int, default=0)
    args = parser.parse_args()
    if args.child:
        result = child(args)
        result["peak_mib"] = peak_mib()
        print(json.dumps(result, default=str))
        return
    os.environ["BENCH_OKTA_TOKEN"] = OKTA_TOKEN
    os.environ["BENCH_SCIM_TOKEN"] = SCIM_TOKEN
    results = [bench(int(n), args.groups, not args.no_raw) for n in args.users.split(",")]
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str))
    table(results)
    goal(results)


if __name__ == "__main__":
    main()
