"""Okta export and hydration against the emulator at Okta's default rate limits.

For each scenario, prints the wall time against the lower bound the rate limits allow
(for each endpoint family, requests needed ÷ its per-minute limit; the largest wins),
the requests made, 429s suffered, and the client's peak memory (its own process, so
the figure is the source's, not the emulator's). Goals: wall time within 1.2x of the
bound; under 1 GB at 100,000 users.

    .venv/bin/python bench/okta_export.py [--sizes 10000 100000] [--hydrate 10000]

The emulator runs as its own process (`scimflow okta-emulator serve`) on a free port.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from scimflow.services.process import wait_until

LIMITS = {"users_list": 600, "groups": 600, "group_one": 600, "user_get": 1000, "logs": 50}
TOKEN = "bench-token"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bound_seconds(requests_by_family: dict[str, int]) -> float:
    return max((n / LIMITS[f] * 60 for f, n in requests_by_family.items() if n), default=0.0)


async def _export(url: str) -> dict[str, object]:
    from scimflow.okta.source import OktaSettings, OktaSource

    async with OktaSource(OktaSettings(org_url=url, token=TOKEN)) as source:
        t0 = time.monotonic()
        export = await source.export()
        wall = time.monotonic() - t0
        return {
            "users": len(export.users),
            "groups": len(export.groups),
            "memberships": len(export.memberships),
            "wall": wall,
            "requests": source.pacer.requests,
            "paced": source.pacer.waited,
        }


async def _hydrate(url: str, ids: list[str], since: str) -> dict[str, object]:
    from scimflow.okta.source import OktaSettings, OktaSource

    async with OktaSource(OktaSettings(org_url=url, token=TOKEN)) as source:
        t0 = time.monotonic()
        frame = await source.hydrate_users(ids, changed_since=since)
        wall = time.monotonic() - t0
        return {
            "users": len(frame),
            "wall": wall,
            "requests": source.pacer.requests,
            "paced": source.pacer.waited,
        }


def child(args: argparse.Namespace) -> None:
    """One scenario in a fresh process: its peak RSS is the scenario's."""
    if args.child == "export":
        result = asyncio.run(_export(args.url))
    else:
        payload = json.loads(Path(args.ids_file).read_text())
        result = asyncio.run(_hydrate(args.url, payload["user_ids"], payload["since"]))
    result["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


def run_child(*argv: str) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, __file__, *argv], capture_output=True, text=True, check=False, timeout=3600
    )
    if out.returncode != 0:
        raise SystemExit(f"scenario failed: {out.stderr[-2000:]}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


class Emulator:
    def __init__(self, users: int, groups: int) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        scimflow = Path(sys.executable).parent / "scimflow"
        env = {**os.environ, "SCIMFLOW_OKTA_TOKEN": TOKEN}
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
        if not wait_until(self.healthy, timeout=300, interval=0.5, alive=self.running):
            raise SystemExit("the emulator did not start")
        self.http = httpx.Client(
            base_url=self.url, headers={"Authorization": f"SSWS {TOKEN}"}, timeout=600
        )

    def running(self) -> bool:
        return self.proc.poll() is None

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def rate_limited(self) -> int:
        return int(self.http.get("/healthz").json()["rate_limited"])

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description="Okta export and hydration benchmark")
    parser.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--hydrate", type=int, default=10_000)
    parser.add_argument("--child", choices=["export", "hydrate"])
    parser.add_argument("--url")
    parser.add_argument("--ids-file")
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    rows = []
    for size in args.sizes:
        emulator = Emulator(size, args.groups)
        try:
            result = run_child("--child", "export", "--url", emulator.url)
            # the requests an export cannot do without, by family
            need = {
                "users_list": math.ceil(int(result["users"]) / 200) + 1,
                "groups": 1,
                "group_one": int(result["groups"]),
            }
            result["refused"] = emulator.rate_limited()
            rows.append((f"export {size:,} users", result, bound_seconds(need)))
            if args.hydrate and size == max(args.sizes):
                mutated = emulator.http.post(
                    "/emulator/mutate", json={"action": "mover", "count": args.hydrate, "seed": 2}
                ).json()
                with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
                    json.dump(mutated, f)
                before = emulator.rate_limited()
                result = run_child(
                    "--child", "hydrate", "--url", emulator.url, "--ids-file", f.name
                )
                result["refused"] = emulator.rate_limited() - before
                Path(f.name).unlink()
                changed = len(mutated["user_ids"])
                need = {"users_list": math.ceil(changed / 200)}
                rows.append((f"hydrate {changed:,} changed users", result, bound_seconds(need)))
                gets = changed / LIMITS["user_get"] * 60
                print(f"(one GET each would be bounded by {gets:.0f} s)")
        finally:
            emulator.close()

    print(
        f"{'scenario':34} {'requests':>9} {'429s':>5} {'bound s':>8} {'wall s':>8} {'ratio':>6} "
        f"{'peak MiB':>9}"
    )
    for name, result, bound in rows:
        wall = float(result["wall"])
        ratio = wall / bound if bound else float("nan")
        print(
            f"{name:34} {int(result['requests']):9d} {int(result['refused']):5d} {bound:8.1f} "
            f"{wall:8.1f} {ratio:6.2f} "
            f"{float(result['peak_mib']):9.0f}"
        )


if __name__ == "__main__":
    main()
