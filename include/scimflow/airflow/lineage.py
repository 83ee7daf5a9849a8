"""scimflow as an Airflow provider: the ``okta://`` and ``scim://`` asset URI schemes.

Airflow accepts an asset URI of any scheme, but OpenLineage turns an asset into a dataset
only when a provider registers the scheme with a URI handler and an OpenLineage converter;
otherwise the asset is silently left out of the events' inputs and outputs. The
``apache_airflow_provider`` entry point in ``pyproject.toml`` names :func:`get_provider_info`.

The URIs (see :mod:`scimflow.airflow.assets`)::

    okta://<org-host>/users      okta://<org-host>/groups
    scim://<target>/Users        scim://<target>/Groups

and their OpenLineage datasets: ``namespace="okta://<org-host>", name="users"`` and
``namespace="scim://<target>", name="Users"``.

This module is imported by Airflow when it builds any asset of these schemes (DAG parse,
task runtime): it imports nothing heavy at module level.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit

if TYPE_CHECKING:
    from airflow.sdk import Asset
    from openlineage.client.generated.base import Dataset

__all__ = [
    "convert_okta_asset",
    "convert_scim_asset",
    "get_provider_info",
    "okta_asset",
    "sanitize_okta_uri",
    "sanitize_scim_uri",
    "scim_asset",
]

PACKAGE = "scimflow"  # must equal the distribution name, or Airflow refuses the provider
OKTA_RESOURCES = ("users", "groups")
SCIM_RESOURCES = ("Users", "Groups")

_HOST_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
# an org host: DNS labels (``example.okta.com``, or the ``okta`` placeholder), optional port
_OKTA_HOST = re.compile(rf"^{_HOST_LABEL}(?:\.{_HOST_LABEL})*(?::[0-9]{{1,5}})?$")
# a target name, as ``TargetConfig.name`` allows it
_SCIM_TARGET = re.compile(r"^[a-z0-9-]{1,63}$")


def _check_common(uri: SplitResult, scheme: str, form: str) -> None:
    if uri.username is not None or uri.password is not None:
        raise ValueError(f"{scheme}:// URI must not contain user info ({form})")
    if uri.query:
        raise ValueError(f"{scheme}:// URI must not have a query ({form})")
    if uri.fragment:
        raise ValueError(f"{scheme}:// URI must not have a fragment ({form})")


def sanitize_okta_uri(uri: SplitResult) -> SplitResult:
    """Validate and normalise ``okta://<org-host>/users|groups``.

    The host and the resource are lower-cased. Raises :class:`ValueError` on anything else.
    """
    form = "expected okta://<org-host>/users or okta://<org-host>/groups"
    _check_common(uri, "okta", form)
    host = uri.netloc.lower()
    if not host:
        raise ValueError(f"okta:// URI must name the Okta org host ({form})")
    if not _OKTA_HOST.match(host):
        raise ValueError(f"okta:// URI has an invalid org host {uri.netloc!r} ({form})")
    resource = uri.path.strip("/").lower()
    if resource not in OKTA_RESOURCES:
        raise ValueError(f"okta:// URI has an unknown resource {uri.path!r} ({form})")
    return uri._replace(scheme="okta", netloc=host, path=f"/{resource}")


def sanitize_scim_uri(uri: SplitResult) -> SplitResult:
    """Validate and normalise ``scim://<target>/Users|Groups``.

    The target is lower-cased (target names are lower-case in the configuration) and the
    resource type gets its SCIM spelling (``users`` becomes ``Users``). Raises
    :class:`ValueError` on anything else.
    """
    form = "expected scim://<target>/Users or scim://<target>/Groups"
    _check_common(uri, "scim", form)
    target = uri.netloc.lower()
    if not target:
        raise ValueError(f"scim:// URI must name the target ({form})")
    if not _SCIM_TARGET.match(target):
        raise ValueError(
            f"scim:// URI has an invalid target name {uri.netloc!r}: "
            f"lower-case letters, digits and '-', at most 63 ({form})"
        )
    by_lower = {r.lower(): r for r in SCIM_RESOURCES}
    resource = by_lower.get(uri.path.strip("/").lower())
    if resource is None:
        raise ValueError(f"scim:// URI has an unknown resource type {uri.path!r} ({form})")
    return uri._replace(scheme="scim", netloc=target, path=f"/{resource}")


def okta_asset(*, resource: str, host: str = "okta", extra: dict[str, Any] | None = None) -> Asset:
    """The asset of an Okta resource (``users`` or ``groups``), named as in ``assets.py``."""
    from airflow.sdk import Asset

    uri = sanitize_okta_uri(urlsplit(f"okta://{host}/{resource}"))
    return Asset(name=f"okta_{uri.path[1:]}", uri=uri.geturl(), extra=extra)


def scim_asset(*, target: str, resource: str, extra: dict[str, Any] | None = None) -> Asset:
    """The asset of a SCIM target's resource type, named as in ``assets.target_assets``."""
    from airflow.sdk import Asset

    uri = sanitize_scim_uri(urlsplit(f"scim://{target}/{resource}"))
    return Asset(name=f"scim_{uri.netloc}_{uri.path[1:].lower()}", uri=uri.geturl(), extra=extra)


def _to_dataset(asset: Asset, scheme: str) -> Dataset:
    from openlineage.client.generated.base import Dataset

    parsed = urlsplit(asset.uri)
    if parsed.scheme != scheme:
        raise ValueError(f"not a {scheme}:// asset: {asset.uri!r}")
    return Dataset(namespace=f"{scheme}://{parsed.netloc}", name=parsed.path.lstrip("/"))


def convert_okta_asset(asset: Asset, lineage_context: object = None) -> Dataset:
    """``okta://<host>/users`` → ``Dataset(namespace="okta://<host>", name="users")``."""
    return _to_dataset(asset, "okta")


def convert_scim_asset(asset: Asset, lineage_context: object = None) -> Dataset:
    """``scim://<target>/Users`` → ``Dataset(namespace="scim://<target>", name="Users")``."""
    return _to_dataset(asset, "scim")


def _uri_entries() -> list[dict[str, Any]]:
    module = "scimflow.airflow.lineage"
    return [
        {
            "schemes": ["okta"],
            "handler": f"{module}.sanitize_okta_uri",
            "factory": f"{module}.okta_asset",
            "to_openlineage_converter": f"{module}.convert_okta_asset",
        },
        {
            "schemes": ["scim"],
            "handler": f"{module}.sanitize_scim_uri",
            "factory": f"{module}.scim_asset",
            "to_openlineage_converter": f"{module}.convert_scim_asset",
        },
    ]


def get_provider_info() -> dict[str, Any]:
    """What Airflow reads through the ``apache_airflow_provider`` entry point."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        current = version(PACKAGE)
    except PackageNotFoundError:  # imported from a source tree that is not installed
        current = "0.0.0"
    return {
        "package-name": PACKAGE,
        "name": "scimflow",
        "description": "Okta (``okta://``) and SCIM (``scim://``) asset URIs of scimflow, "
        "with their OpenLineage datasets.\n",
        "versions": [current],
        "asset-uris": _uri_entries(),
        "dataset-uris": _uri_entries(),
    }
