"""scripts/bootstrap.sh, run for real in a temporary copy of the project.

The copy gets fake system tools (java, mvn, initdb, apt-get, sudo: each records that it
was called) and a local wheel of a fake ``uv`` (it records its arguments), so the script
runs offline in seconds while everything else is real: the interpreter, ``venv``, pip.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UV_VERSION = "0.13.9"
PYTHON = shutil.which("python3.11")

pytestmark = pytest.mark.skipif(PYTHON is None, reason="the project's Python (3.11) is not here")

FAKE_UV = """#!python
import os
import sys

with open(os.environ["FAKE_LOG"], "a") as log:
    log.write("uv " + " ".join(sys.argv[1:]) + "\\n")
if sys.argv[1:] == ["--version"]:
    print("uv %s")
"""


def _record(content: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b"=")
    return f"sha256={digest.decode()},{len(content)}"


def _fake_uv_wheel(folder: Path) -> None:
    """A wheel named uv, of the pinned version, whose script only records its calls."""
    info = f"uv-{UV_VERSION}.dist-info"
    files = {
        f"uv-{UV_VERSION}.data/scripts/uv": (FAKE_UV % UV_VERSION).encode(),
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: uv\nVersion: {UV_VERSION}\n".encode(),
        f"{info}/WHEEL": (
            b"Wheel-Version: 1.0\nGenerator: scimflow-tests\nRoot-Is-Purelib: true\n"
            b"Tag: py3-none-any\n"
        ),
    }
    record = "".join(f"{name},{_record(data)}\n" for name, data in files.items())
    record += f"{info}/RECORD,,\n"
    with zipfile.ZipFile(folder / f"uv-{UV_VERSION}-py3-none-any.whl", "w") as wheel:
        for name, data in files.items():
            entry = zipfile.ZipInfo(name)
            entry.external_attr = 0o100755 << 16  # a regular file, mode 0755: pip keeps it
            wheel.writestr(entry, data)
        wheel.writestr(f"{info}/RECORD", record)


def _tool(folder: Path, name: str, body: str = "") -> None:
    path = folder / name
    path.write_text(f'#!/bin/sh\necho "{name} $*" >> "$FAKE_LOG"\n{body}')
    path.chmod(0o755)


@pytest.fixture()
def project(tmp_path: Path) -> Path:
    """A copy of the script, the lock and pyproject.toml, with fake tools beside it."""
    copy = tmp_path / "project"
    (copy / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "bootstrap.sh", copy / "scripts")
    shutil.copy(ROOT / "requirements.lock", copy)
    shutil.copy(ROOT / "pyproject.toml", copy)
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("java", "mvn", "apt-get"):
        _tool(tools, name)
    _tool(tools, "sudo", 'exec "$@"\n')
    (tmp_path / "pg").mkdir()
    _tool(tmp_path / "pg", "initdb")
    (tmp_path / "wheels").mkdir()
    _fake_uv_wheel(tmp_path / "wheels")
    return copy


def _bootstrap(project: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = project.parent
    full = {
        "PATH": f"{base / 'bin'}:{os.environ['PATH']}",
        "HOME": str(base),
        "FAKE_LOG": str(base / "calls.log"),
        "SCIMFLOW_PG_BINDIR": str(base / "pg"),
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(base / "wheels"),
        **env,
    }
    return subprocess.run(
        ["bash", "scripts/bootstrap.sh"],
        cwd=project,
        env=full,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _calls(project: Path) -> list[str]:
    log = project.parent / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_a_venv_without_pip_is_made_again_and_built(project: Path) -> None:
    assert PYTHON is not None
    # what `python3 -m venv .venv` leaves on Debian without python3.11-venv: no pip
    subprocess.run([PYTHON, "-m", "venv", "--without-pip", str(project / ".venv")], check=True)
    venv_python = project / ".venv" / "bin" / "python"
    assert subprocess.run([venv_python, "-m", "pip", "--version"], check=False).returncode != 0

    done = _bootstrap(project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "making .venv again" in done.stdout
    assert ".venv ready (Python 3.11" in done.stdout
    pip = subprocess.run([venv_python, "-m", "pip", "--version"], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr
    calls = _calls(project)
    assert not any(c.startswith(("apt-get", "sudo")) for c in calls), calls
    assert "uv pip sync -q --python .venv/bin/python requirements.lock" in calls
    assert "uv pip install -q --python .venv/bin/python --no-deps -e ." in calls
    want = hashlib.sha256(
        (project / "requirements.lock").read_bytes() + (project / "pyproject.toml").read_bytes()
    ).hexdigest()
    assert (project / ".venv" / ".scimflow-lock").read_text().strip() == want

    # a second run finds it ready: no rebuild, no install
    (project.parent / "calls.log").unlink()
    again = _bootstrap(project)
    assert again.returncode == 0, again.stderr
    assert again.stdout == ""
    assert [c for c in _calls(project) if not c.endswith("--version")] == []


@pytest.mark.parametrize("uid", [0, 1000], ids=["root", "user-with-sudo"])
def test_a_python_without_venv_support_gets_it_from_debian(project: Path, uid: int) -> None:
    assert PYTHON is not None
    _tool(project.parent / "bin", "id", f"echo {uid}\n")  # `id -u`: who bootstrap runs as
    # an interpreter that has no ensurepip, as Debian's python3 before python3.11-venv
    wrapper = project.parent / "bin" / "python3.11"
    wrapper.write_text(f'#!/bin/sh\ncase "$*" in *ensurepip*) exit 1;; esac\nexec {PYTHON} "$@"\n')
    wrapper.chmod(0o755)
    done = _bootstrap(project)
    assert done.returncode == 0, done.stdout + done.stderr
    calls = _calls(project)
    installs = [c for c in calls if c.startswith("apt-get") and " install " in c]
    assert len(installs) == 1, calls
    assert installs[0].endswith("python3.11-venv")
    # as a user, both apt-get calls (update, install) go through sudo; as root, none
    through_sudo = [c for c in calls if c.startswith("sudo ")]
    assert len(through_sudo) == (2 if uid else 0), calls
    assert (project / ".venv" / ".scimflow-lock").exists()
