"""Data quality of an Okta export with great-expectations 1.x: a suite per record kind.

Records that fail are quarantined with their reasons (by Okta id, never by value, so the
report holds no personal data) and are not pushed; the rest go on. The run fails only
when the failed share of users passes a threshold, or when an expectation could not be
evaluated at all (a missing column fails every row silently in GX: caught here).

Facts this relies on (checked with GX 1.24 on pandas 3): COMPLETE results list every
failing row index in ``unexpected_index_list`` (values are capped at 200: never read);
uniqueness is case-sensitive, so it runs on a lower-cased view; references are computed
in pandas and expected to be True, which is 50x faster than a value set.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from scimflow.errors import ScimflowError
from scimflow.scim.config import OKTA_STATUSES

__all__ = ["QualityGateError", "QualityResult", "validate_export"]

EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class QualityGateError(ScimflowError):
    """Too many records failed validation, or a check could not run: nothing is pushed."""


@dataclass
class QualityResult:
    quarantined_users: dict[str, list[str]] = field(default_factory=dict)
    quarantined_groups: dict[str, list[str]] = field(default_factory=dict)
    dropped_memberships: int = 0
    rows: dict[str, int] = field(default_factory=dict)
    expectations: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed_share(self) -> float:
        users = self.rows.get("users", 0)
        return len(self.quarantined_users) / users if users else 0.0

    def summary(self) -> dict[str, Any]:
        """Counts only: safe for XCom and logs."""
        return {
            "rows": dict(self.rows),
            "quarantined_users": len(self.quarantined_users),
            "quarantined_groups": len(self.quarantined_groups),
            "dropped_memberships": self.dropped_memberships,
            "failed_share": round(self.failed_share, 4),
            "failed_expectations": [e["name"] for e in self.expectations if not e["success"]],
            "seconds": round(self.seconds, 2),
        }


def _errored(info: Any) -> bool:
    if not info:
        return False
    if "raised_exception" in info:
        return bool(info["raised_exception"])
    return any(isinstance(v, dict) and v.get("raised_exception") for v in info.values())


def _lower(series: pd.Series) -> pd.Series:
    return series.astype("string").str.strip().str.lower()


class _Validator:
    def __init__(self) -> None:
        logging.getLogger("great_expectations").setLevel(logging.WARNING)
        with warnings.catch_warnings():
            # GX imports the deprecated sre_constants and sre_parse modules itself
            warnings.filterwarnings(
                "ignore",
                message="module 'sre_(constants|parse)' is deprecated",
                category=DeprecationWarning,
            )
            import great_expectations as gx
        self.gx = gx
        self.ctx = gx.get_context(mode="ephemeral")
        from great_expectations.data_context.types.base import ProgressBarsConfig

        self.ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
        self.source = self.ctx.data_sources.add_pandas("scimflow")

    def run(
        self, kind: str, frame: pd.DataFrame, expectations: Iterable[Any]
    ) -> list[tuple[str, bool, list[int]]]:
        gx = self.gx
        asset = self.source.add_dataframe_asset(kind)
        batch = asset.add_batch_definition_whole_dataframe("all").get_batch(
            batch_parameters={"dataframe": frame}
        )
        suite = gx.ExpectationSuite(name=f"okta_{kind}")
        for expectation in expectations:
            suite.add_expectation(expectation)
        result = batch.validate(
            suite,
            result_format={"result_format": "COMPLETE", "return_unexpected_index_query": False},
        )
        out = []
        for r in result.results:
            cfg = r.expectation_config
            column = cfg.kwargs.get("column", "")
            name = f"{kind}.{column}: {cfg.type}"
            if _errored(r.exception_info):
                raise QualityGateError(
                    f"the check {name} could not run (a missing column?): nothing is pushed"
                )
            out.append((name, bool(r.success), list(r.result.get("unexpected_index_list") or [])))
        return out


def validate_export(
    users: pd.DataFrame,
    groups: pd.DataFrame,
    memberships: pd.DataFrame,
    *,
    max_failed_share: float = 0.05,
    report: Path | None = None,
    partial: bool = False,
) -> QualityResult:
    """Validate an export; quarantine failing users and groups; enforce the threshold.

    ``partial`` is for a stream batch: only some users and groups are present, so
    references to others (managers, members) are not checked here, and users deleted
    from Okta (no profile left) are not validated: they are only deprovisioned.
    """
    t0 = time.monotonic()
    gx_validator = _Validator()
    E = gx_validator.gx.expectations
    result = QualityResult(
        rows={"users": len(users), "groups": len(groups), "memberships": len(memberships)}
    )

    u = users.reset_index(drop=True).copy()
    if partial and "deleted" in u.columns:
        u = u[~u["deleted"].fillna(False).astype(bool)].reset_index(drop=True)
    u["login_lc"] = _lower(u["login"])
    u["email_lc"] = _lower(u["email"])
    known = set(u["id"].dropna())
    u["manager_resolves"] = u["manager_id"].isna() | u["manager_id"].isin(known) | partial
    checks = gx_validator.run(
        "users",
        u,
        [
            E.ExpectColumnValuesToNotBeNull(column="id"),
            E.ExpectColumnValuesToBeUnique(column="id"),
            E.ExpectColumnValuesToNotBeNull(column="login"),
            E.ExpectColumnValuesToMatchRegex(column="login", regex=EMAIL),
            E.ExpectColumnValuesToNotBeNull(column="email"),
            E.ExpectColumnValuesToMatchRegex(column="email", regex=EMAIL),
            E.ExpectColumnValuesToBeUnique(column="login_lc"),
            E.ExpectColumnValuesToBeUnique(column="email_lc"),
            E.ExpectColumnValuesToNotBeNull(column="first_name"),
            E.ExpectColumnValuesToNotBeNull(column="last_name"),
            E.ExpectColumnValuesToBeInSet(column="status", value_set=list(OKTA_STATUSES)),
            E.ExpectColumnValuesToBeInSet(column="manager_resolves", value_set=[True]),
        ],
    )
    for name, success, rows in checks:
        result.expectations.append({"name": name, "success": success, "failed_rows": len(rows)})
        for i in rows:
            okta_id = u.at[i, "id"]
            key = str(okta_id) if pd.notna(okta_id) else f"row:{i}"
            result.quarantined_users.setdefault(key, []).append(
                name.split(": ", 1)[1] + " on " + name.split(": ")[0]
            )

    g = groups.reset_index(drop=True).copy()
    if partial and "deleted" in g.columns:
        g = g[~g["deleted"].fillna(False).astype(bool)].reset_index(drop=True)
    g["name_lc"] = _lower(g["name"])
    for name, success, rows in gx_validator.run(
        "groups",
        g,
        [
            E.ExpectColumnValuesToNotBeNull(column="id"),
            E.ExpectColumnValuesToBeUnique(column="id"),
            E.ExpectColumnValuesToNotBeNull(column="name"),
            E.ExpectColumnValuesToBeUnique(column="name_lc"),
        ],
    ):
        result.expectations.append({"name": name, "success": success, "failed_rows": len(rows)})
        for i in rows:
            gid = g.at[i, "id"]
            key = str(gid) if pd.notna(gid) else f"row:{i}"
            result.quarantined_groups.setdefault(key, []).append(
                name.split(": ", 1)[1] + " on " + name.split(": ")[0]
            )

    m = memberships.reset_index(drop=True).copy()
    m["user_resolves"] = m["user_id"].isin(known) | partial
    m["group_resolves"] = m["group_id"].isin(set(g["id"].dropna()))
    for name, success, rows in gx_validator.run(
        "memberships",
        m,
        [
            E.ExpectColumnValuesToBeInSet(column="user_resolves", value_set=[True]),
            E.ExpectColumnValuesToBeInSet(column="group_resolves", value_set=[True]),
        ],
    ):
        result.expectations.append({"name": name, "success": success, "failed_rows": len(rows)})
        result.dropped_memberships += len(rows)
    result.seconds = time.monotonic() - t0
    if report is not None:
        write_report(result, report, max_failed_share)
    if result.failed_share > max_failed_share:
        raise QualityGateError(
            f"{len(result.quarantined_users)} of {len(users)} users failed validation "
            f"({result.failed_share:.1%}), more than the {max_failed_share:.1%} allowed: "
            "nothing is pushed" + (f"; report: {report}" if report else "")
        )
    return result


def write_report(result: QualityResult, path: Path, max_failed_share: float) -> Path:
    """A readable Markdown report: expectations, counts, quarantined ids with reasons."""
    lines = [
        "# scimflow data quality report",
        "",
        f"Rows: {result.rows}. Quarantined users: {len(result.quarantined_users)} "
        f"({result.failed_share:.2%}, threshold {max_failed_share:.2%}); quarantined groups: "
        f"{len(result.quarantined_groups)}; memberships dropped: {result.dropped_memberships}.",
        "",
        "| expectation | result | failing rows |",
        "| --- | --- | ---: |",
    ]
    for e in result.expectations:
        lines.append(f"| {e['name']} | {'pass' if e['success'] else 'FAIL'} | {e['failed_rows']} |")
    for title, items in (
        ("Quarantined users", result.quarantined_users),
        ("Quarantined groups", result.quarantined_groups),
    ):
        if items:
            lines += ["", f"## {title}", "", "| Okta id | reasons |", "| --- | --- |"]
            lines += [f"| {k} | {'; '.join(v)} |" for k, v in sorted(items.items())]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
