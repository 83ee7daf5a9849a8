"""A churn driver: mutates the directory like a real organisation, at a steady rate.

Joiners, movers, leavers, suspensions, reactivations, group changes and deletions, in
proportions typical of a mid-size company, each through the directory's own mutations
(so each bumps ``lastUpdated``, writes its System Log event and is delivered as an
Event Hook). Deterministic for a given seed and directory.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

from scimflow.okta.emulator.directory import DEPARTMENTS, TITLES, Directory, EmulatorError

__all__ = ["ChurnDriver"]


class ChurnDriver:
    def __init__(self, directory: Directory, *, rate: float, seed: int = 0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive (mutations per second)")
        self.d = directory
        self.rate = rate
        self.rng = random.Random(seed)
        self.mutations = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # (weight, action)
        self.actions: list[tuple[int, Callable[[], None]]] = [
            (30, self.mover),
            (15, self.joiner),
            (8, self.leaver),
            (4, self.suspend),
            (3, self.unsuspend),
            (2, self.reactivate),
            (2, self.delete),
            (20, self.membership_add),
            (12, self.membership_remove),
            (2, self.group_rename),
            (1, self.group_create),
            (1, self.group_delete),
        ]

    def action_names(self) -> list[str]:
        return [a.__name__ for _, a in self.actions]

    # -- picking ---------------------------------------------------------------------
    def _user(self, *statuses: str) -> str | None:
        ids = self.d.user_ids
        for _ in range(20):
            if not ids:
                return None
            uid = ids[self.rng.randrange(len(ids))]
            user = self.d.users.get(uid)
            if user is not None and (not statuses or user["status"] in statuses):
                return uid
        return None

    def _group(self) -> str | None:
        live = [g for g in self.d.group_ids[-200:] if g in self.d.groups]
        return self.rng.choice(live) if live else None

    # -- actions -----------------------------------------------------------------------
    def joiner(self) -> None:
        uid = self.d.create_user(self.d.random_profile())
        gid = self._group()
        if gid:
            self.d.add_member(gid, uid)

    def mover(self) -> None:
        uid = self._user("ACTIVE", "PROVISIONED", "SUSPENDED", "LOCKED_OUT", "PASSWORD_EXPIRED")
        if uid:
            self.d.update_profile(
                uid, {"department": self.rng.choice(DEPARTMENTS), "title": self.rng.choice(TITLES)}
            )

    def leaver(self) -> None:
        uid = self._user(
            "ACTIVE", "PROVISIONED", "SUSPENDED", "LOCKED_OUT", "PASSWORD_EXPIRED", "STAGED"
        )
        if uid:
            self.d.lifecycle(uid, "deactivate")

    def suspend(self) -> None:
        if uid := self._user("ACTIVE"):
            self.d.lifecycle(uid, "suspend")

    def unsuspend(self) -> None:
        if uid := self._user("SUSPENDED"):
            self.d.lifecycle(uid, "unsuspend")

    def reactivate(self) -> None:
        if uid := self._user("DEPROVISIONED"):
            self.d.lifecycle(uid, "reactivate")

    def delete(self) -> None:
        if uid := self._user("DEPROVISIONED"):
            self.d.delete_user(uid)

    def membership_add(self) -> None:
        uid, gid = self._user("ACTIVE"), self._group()
        if uid and gid:
            self.d.add_member(gid, uid)

    def membership_remove(self) -> None:
        gid = self._group()
        if gid and self.d.members.get(gid):
            uid = self.rng.choice(sorted(self.d.members[gid]))
            self.d.remove_member(gid, uid)

    def group_rename(self) -> None:
        if gid := self._group():
            self.d.update_group(gid, {"description": f"renamed {self.rng.randrange(10**6)}"})

    def group_create(self) -> None:
        self.d.create_group(f"{self.rng.choice(DEPARTMENTS)}-team-{self.rng.randrange(10**6):06d}")

    def group_delete(self) -> None:
        if len(self.d.groups) > 5 and (gid := self._group()):
            self.d.delete_group(gid)

    def step(self) -> None:
        """One mutation, picked by weight."""
        weights = [w for w, _ in self.actions]
        action = self.rng.choices([a for _, a in self.actions], weights=weights)[0]
        with self.d.lock:
            try:
                action()
                self.mutations += 1
            except EmulatorError:
                self.failed += 1

    # -- running -------------------------------------------------------------------------
    def run(self, *, count: int | None = None, duration: float | None = None) -> int:
        """Mutate at ``rate`` per second until ``count`` mutations, ``duration`` or stop()."""
        interval = 1.0 / self.rate
        start = time.monotonic()
        n = 0
        while not self._stop.is_set():
            if count is not None and n >= count:
                break
            if duration is not None and time.monotonic() - start >= duration:
                break
            self.step()
            n += 1
            delay = start + n * interval - time.monotonic()
            if delay > 0:
                self._stop.wait(delay)
        return n

    def start(self, *, duration: float | None = None) -> None:
        self._thread = threading.Thread(
            target=self.run, kwargs={"duration": duration}, name="okta-churn", daemon=True
        )
        self._thread.start()

    def stop(self) -> int:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        return self.mutations
