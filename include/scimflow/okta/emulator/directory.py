"""The emulated organisation: users, groups, memberships and the System Log.

Objects are kept in Okta's documented JSON shapes, so the API layer serves them as they
are. Every mutation bumps ``lastUpdated``, appends a System Log event of the real type
and shape, and hands that event to the listeners (the Event Hook deliverer).
Identifiers sort in creation order, which gives stable ``after`` cursors.

The seed decides the seeded organisation only: the same seed gives the same users,
groups and memberships. Whatever happens after seeding is as unique as Okta's: System
Log uuids (the stream's dedupe key, and the catch-up's) and the ids of entities created
later come from the system's random source, so an emulator restarted with the same seed
never reissues an event uuid or an id that an earlier run handed out.
"""

from __future__ import annotations

import bisect
import random
import string
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

__all__ = ["Directory", "EmulatorError", "okta_time"]

FIRST = [
    "Ada",
    "Alan",
    "Barbara",
    "Claude",
    "Dennis",
    "Edsger",
    "Frances",
    "Grace",
    "Hedy",
    "Ivan",
    "John",
    "Katherine",
    "Linus",
    "Margaret",
    "Niklaus",
    "Radia",
    "Sophie",
    "Tim",
    "Ursula",
    "Whitfield",
    "Yukihiro",
    "Zeynep",
    "Kurt",
    "Leslie",
    "Donald",
    "Ken",
    "Bjarne",
    "Guido",
    "Anita",
    "Shafi",
    "Silvio",
    "Jean",
    "Mary",
    "Annie",
    "Evelyn",
    "Ruth",
    "Joan",
    "Lynn",
    "Carol",
]
LAST = [
    "Lovelace",
    "Turing",
    "Liskov",
    "Shannon",
    "Ritchie",
    "Dijkstra",
    "Allen",
    "Hopper",
    "Lamarr",
    "Sutherland",
    "Backus",
    "Johnson",
    "Torvalds",
    "Hamilton",
    "Wirth",
    "Perlman",
    "Wilson",
    "Berners-Lee",
    "Burns",
    "Diffie",
    "Matsumoto",
    "Tufekci",
    "Goedel",
    "Lamport",
    "Knuth",
    "Thompson",
    "Stroustrup",
    "Rossum",
    "Borg",
    "Goldwasser",
    "Micali",
    "Sammet",
    "Keller",
    "Easley",
    "Clarke",
    "Teitelman",
    "Clarke",
    "Conway",
    "Shaw",
]
DEPARTMENTS = [
    "Engineering",
    "Sales",
    "Marketing",
    "Finance",
    "Legal",
    "Support",
    "Operations",
    "People",
    "Security",
    "Research",
]
TITLES = [
    "Engineer",
    "Manager",
    "Analyst",
    "Director",
    "Specialist",
    "Associate",
    "Architect",
    "Consultant",
]
DIVISIONS = ["EMEA", "AMER", "APAC"]
STATUSES = (
    ("ACTIVE",) * 88
    + ("STAGED",) * 3
    + ("PROVISIONED",) * 2
    + ("SUSPENDED",) * 3
    + ("DEPROVISIONED",) * 2
    + ("LOCKED_OUT", "PASSWORD_EXPIRED")
)
ALNUM = string.ascii_letters + string.digits
# ids of entities created after seeding: never the seeded generator (see the module doc)
_UNIQUE = random.SystemRandom()
B36 = string.digits + string.ascii_lowercase


class EmulatorError(Exception):
    """A request Okta would refuse: carries the HTTP status and Okta's error code."""

    def __init__(self, status: int, code: str, summary: str) -> None:
        super().__init__(summary)
        self.status = status
        self.code = code
        self.summary = summary


def okta_time(moment: datetime) -> str:
    """Okta's timestamp form: UTC, milliseconds, ``Z``."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def _b36(n: int, width: int) -> str:
    out = ""
    while n:
        n, r = divmod(n, 36)
        out = B36[r] + out
    return out.rjust(width, "0")


@dataclass
class Directory:
    """One Okta organisation in memory; thread-safe."""

    org_url: str = "http://127.0.0.1:8090"
    seed: int = 0
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[str, set[str]] = field(default_factory=dict)
    user_groups: dict[str, set[str]] = field(default_factory=dict)
    log: list[dict[str, Any]] = field(default_factory=list)
    listeners: list[Callable[[dict[str, Any]], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.lock = threading.RLock()
        self.rng = random.Random(self.seed)
        self._seeding = False
        self._counter = 0
        self._last = datetime.now(UTC) - timedelta(days=1)
        self.user_ids: list[str] = []
        self.group_ids: list[str] = []
        self._logins: dict[str, str] = {}
        self.published: list[str] = []  # log[i]["published"], for bisection

    # -- clock and identifiers ------------------------------------------------
    def now(self) -> str:
        """A strictly increasing timestamp, so every change has its own lastUpdated."""
        moment = max(datetime.now(UTC), self._last + timedelta(milliseconds=1))
        self._last = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
        return okta_time(self._last)

    def _new_id(self, prefix: str) -> str:
        self._counter += 1
        rng = self.rng if self._seeding else _UNIQUE
        tail = "".join(rng.choice(ALNUM) for _ in range(10))
        return f"{prefix}{_b36(self._counter, 7)}{tail}"

    def _link(self, path: str) -> dict[str, str]:
        return {"href": f"{self.org_url}{path}"}

    # -- seeding ----------------------------------------------------------------
    def seed_org(self, users: int, groups: int) -> None:
        """A realistic organisation: statuses, departments, managers, group memberships."""
        with self.lock:
            self._seeding = True
            try:
                self._seed_org(users, groups)
            finally:
                self._seeding = False

    def _seed_org(self, users: int, groups: int) -> None:
        for _ in range(users):
            status = self.rng.choice(STATUSES)
            self.create_user(self.random_profile(), status=status, emit=False)
        ids = list(self.user_ids)
        managers = ids[: max(1, len(ids) // 10)]
        for uid in ids[len(managers) :]:
            if self.rng.random() < 0.9:
                self.users[uid]["profile"]["managerId"] = self.rng.choice(managers)
        gids = [
            self.create_group(f"{self.rng.choice(DEPARTMENTS)}-{i:04d}", emit=False)
            for i in range(groups)
        ]
        if not gids:
            return
        # each user in 1 to 5 groups (3 on average); a few groups are large (Zipf-like)
        cum: list[float] = []
        total = 0.0
        for rank in range(len(gids)):
            total += 1.0 / (rank + 1)
            cum.append(total)
        for uid in ids:
            k = self.rng.choice((1, 2, 2, 3, 3, 3, 4, 5))
            for gid in set(self.rng.choices(gids, cum_weights=cum, k=k)):
                self.add_member(gid, uid, emit=False)

    def random_profile(self) -> dict[str, Any]:
        first, last = self.rng.choice(FIRST), self.rng.choice(LAST)
        n = self._counter + 1
        login = f"{first}.{last}.{n}@example.com".lower()
        return {
            "firstName": first,
            "lastName": last,
            "login": login,
            "email": login,
            "mobilePhone": f"+1-555-{self.rng.randrange(10**7):07d}",
            "department": self.rng.choice(DEPARTMENTS),
            "title": self.rng.choice(TITLES),
            "employeeNumber": f"E{n:07d}",
            "costCenter": f"CC-{self.rng.randrange(100, 999)}",
            "organization": "Example Corp",
            "division": self.rng.choice(DIVISIONS),
            "managerId": None,
        }

    # -- reads -----------------------------------------------------------------
    def get_user(self, key: str) -> dict[str, Any]:
        """By id, or by login (case-insensitive) as Okta allows."""
        with self.lock:
            uid = key if key in self.users else self._logins.get(key.lower())
            if uid is None:
                raise EmulatorError(404, "E0000007", f"Not found: Resource not found: {key} (User)")
            return self.users[uid]

    def get_group(self, gid: str) -> dict[str, Any]:
        with self.lock:
            if gid not in self.groups:
                raise EmulatorError(
                    404, "E0000007", f"Not found: Resource not found: {gid} (UserGroup)"
                )
            return self.groups[gid]

    @staticmethod
    def page(
        ids: list[str],
        objects: dict[str, dict[str, Any]],
        *,
        after: str | None,
        limit: int,
        keep: Callable[[dict[str, Any]], bool] | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """Up to ``limit`` objects after the cursor; the cursor of the next page, if any."""
        start = bisect.bisect_right(ids, after) if after else 0
        out: list[dict[str, Any]] = []
        for i in range(start, len(ids)):
            obj = objects.get(ids[i])
            if obj is None or (keep is not None and not keep(obj)):
                continue
            if len(out) == limit:
                return out, out[-1]["id"]
            out.append(obj)
        return out, None

    def iter_log(self, since: str, until: str | None) -> Iterator[dict[str, Any]]:
        for event in self.log[bisect.bisect_left(self.published, since) :]:
            if until is not None and event["published"] >= until:
                break
            yield event

    # -- user mutations --------------------------------------------------------
    def create_user(
        self, profile: dict[str, Any], *, status: str = "ACTIVE", emit: bool = True
    ) -> str:
        with self.lock:
            login = str(profile.get("login") or "")
            if not login:
                raise EmulatorError(
                    400, "E0000001", "Api validation failed: login: The field cannot be left blank"
                )
            if login.lower() in self._logins:
                raise EmulatorError(
                    400,
                    "E0000001",
                    "Api validation failed: login: An object with this field already exists",
                )
            uid = self._new_id("00u")
            ts = self.now()
            active = status not in ("STAGED", "DEPROVISIONED")
            user = {
                "id": uid,
                "status": status,
                "created": ts,
                "activated": ts if active else None,
                "statusChanged": ts,
                "lastLogin": None,
                "lastUpdated": ts,
                "passwordChanged": ts if active else None,
                "type": {"id": "oty1defaultusertype0"},
                "profile": {"secondEmail": None, **profile},
                "credentials": {"provider": {"type": "OKTA", "name": "OKTA"}},
                "_links": {"self": self._link(f"/api/v1/users/{uid}")},
            }
            self.users[uid] = user
            self.user_ids.append(uid)
            self._logins[login.lower()] = uid
            self.user_groups[uid] = set()
            if emit:
                self._emit("user.lifecycle.create", "create okta user", [self._user_target(user)])
                if active:
                    self._emit(
                        "user.lifecycle.activate", "activate okta user", [self._user_target(user)]
                    )
            return uid

    def update_profile(self, uid: str, changes: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            user = self.get_user(uid)
            old_login = str(user["profile"]["login"]).lower()
            new_login = str(changes.get("login", old_login)).lower()
            if new_login != old_login:
                if new_login in self._logins:
                    raise EmulatorError(
                        400,
                        "E0000001",
                        "Api validation failed: login: An object with this field already exists",
                    )
                del self._logins[old_login]
                self._logins[new_login] = user["id"]
            user["profile"].update(changes)
            user["lastUpdated"] = self.now()
            self._emit(
                "user.account.update_profile",
                "update user profile for Okta",
                [self._user_target(user)],
            )
            return user

    _TRANSITIONS: ClassVar[dict[str, tuple[tuple[str, ...], str, str, str]]] = {
        # action: (allowed from, to, event type, display message)
        "activate": (
            ("STAGED", "PROVISIONED"),
            "ACTIVE",
            "user.lifecycle.activate",
            "activate okta user",
        ),
        "deactivate": (
            (
                "STAGED",
                "PROVISIONED",
                "ACTIVE",
                "RECOVERY",
                "PASSWORD_EXPIRED",
                "LOCKED_OUT",
                "SUSPENDED",
            ),
            "DEPROVISIONED",
            "user.lifecycle.deactivate",
            "deactivate okta user",
        ),
        "reactivate": (
            ("DEPROVISIONED",),
            "PROVISIONED",
            "user.lifecycle.reactivate",
            "reactivate okta user",
        ),
        "suspend": (("ACTIVE",), "SUSPENDED", "user.lifecycle.suspend", "suspend okta user"),
        "unsuspend": (("SUSPENDED",), "ACTIVE", "user.lifecycle.unsuspend", "unsuspend okta user"),
        "unlock": (("LOCKED_OUT",), "ACTIVE", "user.account.unlock", "unlock user account"),
    }

    def lifecycle(self, uid: str, action: str) -> dict[str, Any]:
        with self.lock:
            user = self.get_user(uid)
            if action not in self._TRANSITIONS:
                raise EmulatorError(
                    404,
                    "E0000022",
                    f"The endpoint does not support the provided HTTP method: {action}",
                )
            allowed, to, event_type, message = self._TRANSITIONS[action]
            if user["status"] not in allowed:
                raise EmulatorError(
                    400,
                    "E0000001",
                    f"Api validation failed: cannot {action} a user in status {user['status']}",
                )
            ts = self.now()
            user["status"] = to
            user["statusChanged"] = ts
            user["lastUpdated"] = ts
            if (
                action in ("activate", "reactivate", "unsuspend", "unlock")
                and not user["activated"]
            ):
                user["activated"] = ts
            self._emit(event_type, message, [self._user_target(user)])
            return user

    def delete_user(self, uid: str) -> None:
        """Okta deletes only deprovisioned users (a first DELETE deactivates)."""
        with self.lock:
            user = self.get_user(uid)
            if user["status"] != "DEPROVISIONED":
                self.lifecycle(uid, "deactivate")
                return
            target = self._user_target(user)
            for gid in list(self.user_groups.get(user["id"], ())):
                self.members[gid].discard(user["id"])
            self.user_groups.pop(user["id"], None)
            del self.users[user["id"]]
            del self._logins[str(user["profile"]["login"]).lower()]
            self._emit("user.lifecycle.delete.initiated", "delete okta user", [target])

    # -- group mutations --------------------------------------------------------
    def create_group(self, name: str, description: str = "", *, emit: bool = True) -> str:
        with self.lock:
            if any(g["profile"]["name"] == name for g in self.groups.values()):
                raise EmulatorError(
                    400,
                    "E0000001",
                    "Api validation failed: name: An object with this field already exists",
                )
            gid = self._new_id("00g")
            ts = self.now()
            self.groups[gid] = {
                "id": gid,
                "created": ts,
                "lastUpdated": ts,
                "lastMembershipUpdated": ts,
                "objectClass": ["okta:user_group"],
                "type": "OKTA_GROUP",
                "profile": {"name": name, "description": description},
                "_links": {
                    "self": self._link(f"/api/v1/groups/{gid}"),
                    "users": self._link(f"/api/v1/groups/{gid}/users"),
                },
            }
            self.group_ids.append(gid)
            self.members[gid] = set()
            if emit:
                self._emit(
                    "group.lifecycle.create", "add group", [self._group_target(self.groups[gid])]
                )
            return gid

    def update_group(self, gid: str, profile: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            group = self.get_group(gid)
            group["profile"].update(profile)
            group["lastUpdated"] = self.now()
            self._emit("group.profile.update", "update group profile", [self._group_target(group)])
            return group

    def delete_group(self, gid: str) -> None:
        with self.lock:
            group = self.get_group(gid)
            for uid in self.members.pop(gid, set()):
                self.user_groups.get(uid, set()).discard(gid)
            del self.groups[gid]
            self._emit("group.lifecycle.delete", "delete group", [self._group_target(group)])

    def add_member(self, gid: str, uid: str, *, emit: bool = True) -> None:
        with self.lock:
            group, user = self.get_group(gid), self.get_user(uid)
            if user["id"] in self.members[gid]:
                return
            self.members[gid].add(user["id"])
            self.user_groups[user["id"]].add(gid)
            group["lastMembershipUpdated"] = self.now()
            if emit:
                self._emit(
                    "group.user_membership.add",
                    "add user to group membership",
                    [self._user_target(user), self._group_target(group)],
                )

    def remove_member(self, gid: str, uid: str) -> None:
        with self.lock:
            group, user = self.get_group(gid), self.get_user(uid)
            if user["id"] not in self.members[gid]:
                return
            self.members[gid].discard(user["id"])
            self.user_groups[user["id"]].discard(gid)
            group["lastMembershipUpdated"] = self.now()
            self._emit(
                "group.user_membership.remove",
                "remove user from group membership",
                [self._user_target(user), self._group_target(group)],
            )

    # -- System Log ---------------------------------------------------------------
    @staticmethod
    def _user_target(user: dict[str, Any]) -> dict[str, Any]:
        p = user["profile"]
        return {
            "id": user["id"],
            "type": "User",
            "alternateId": p["login"],
            "displayName": f"{p.get('firstName', '')} {p.get('lastName', '')}".strip(),
            "detailEntry": None,
        }

    @staticmethod
    def _group_target(group: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": group["id"],
            "type": "UserGroup",
            "alternateId": "unknown",
            "displayName": group["profile"]["name"],
            "detailEntry": None,
        }

    def _emit(self, event_type: str, message: str, targets: list[dict[str, Any]]) -> dict[str, Any]:
        event: dict[str, Any] = {
            "uuid": str(uuid.uuid4()),
            "published": self.now(),
            "eventType": event_type,
            "version": "0",
            "severity": "INFO",
            "legacyEventType": None,
            "displayMessage": message,
            "actor": {
                "id": "00uemulatoradmin0001",
                "type": "User",
                "alternateId": "admin@example.com",
                "displayName": "Emulator Admin",
                "detailEntry": None,
            },
            "client": {
                "userAgent": {
                    "rawUserAgent": "scimflow-okta-emulator",
                    "os": "Unknown",
                    "browser": "UNKNOWN",
                },
                "zone": "null",
                "device": "Unknown",
                "id": None,
                "ipAddress": "127.0.0.1",
                "geographicalContext": None,
            },
            "outcome": {"result": "SUCCESS", "reason": None},
            "target": targets,
            "transaction": {"type": "WEB", "id": uuid.uuid4().hex[:24], "detail": {}},
            "debugContext": {"debugData": {}},
            "authenticationContext": {
                "authenticationProvider": None,
                "credentialProvider": None,
                "credentialType": None,
                "issuer": None,
                "interface": None,
                "authenticationStep": 0,
                "externalSessionId": "unknown",
            },
            "securityContext": {
                "asNumber": None,
                "asOrg": None,
                "isp": None,
                "domain": None,
                "isProxy": None,
            },
            "request": {"ipChain": []},
        }
        self.log.append(event)
        self.published.append(event["published"])
        for listener in self.listeners:
            listener(event)
        return event
