"""Shared helpers of the chart gate's tests: render the chart with both Helm versions and read the output."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "cynode"
TOOLS = ROOT / ".tools" / "helm" / "bin"
HELMS = {"helm3": TOOLS / "helm3", "helm4": TOOLS / "helm4"}
CI_FILES = sorted((CHART / "ci").glob("*-values.yaml"))
# The one ci file that turns on a mode outside the restricted Pod Security Standard (the checker must reject it).
PRIVILEGED_CI_FILES = {"hostsocket-values.yaml"}
# Secrets named by the ci files: the smallest complete set an install needs.
BASE = {"database": {"existingSecret": {"name": "db"}}, "masterKey": {"existingSecret": {"name": "mk"}}}


class RenderError(Exception):
    """`helm template` failed; the message is Helm's."""


def helm(which: str, *args: str, chart: Path = CHART) -> subprocess.CompletedProcess[str]:
    """Runs a Helm binary with a private home, so nothing outside the repository is read or written."""
    home = ROOT / ".tools" / "helm" / "home"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }
    return subprocess.run([str(HELMS[which]), *args], capture_output=True, text=True, env=env, cwd=ROOT,
                          check=False)


def render(values: dict[str, Any] | None = None, files: tuple[str, ...] = (), release: str = "rel",
           which: str = "helm4", chart: Path = CHART, show_only: str | None = None) -> list[dict[str, Any]]:
    """Renders the chart (with hooks and test pods) and returns its documents."""
    return list(_render(yaml.safe_dump(values or {}), files, release, which, str(chart), show_only))


@functools.lru_cache(maxsize=256)
def _render(values: str, files: tuple[str, ...], release: str, which: str, chart: str,
            show_only: str | None) -> tuple[dict[str, Any], ...]:
    tmp = ROOT / ".tools" / "helm" / "values"
    tmp.mkdir(parents=True, exist_ok=True)
    vf = tmp / f"v{abs(hash((values, files, release, which, chart)))}.yaml"
    vf.write_text(values)
    args = ["template", release, chart, "--namespace", "cynode"]
    for f in files:
        args += ["-f", str(CHART / "ci" / f) if "/" not in f else f]
    args += ["-f", str(vf)]
    if show_only:
        args += ["--show-only", show_only]
    done = helm(which, *args, chart=Path(chart))
    vf.unlink()
    if done.returncode != 0:
        raise RenderError(done.stderr.strip())
    return tuple(d for d in yaml.safe_load_all(done.stdout) if d)


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    """The documents of one kind."""
    return [d for d in docs if d.get("kind") == kind]


def one(docs: list[dict[str, Any]], kind: str, name_suffix: str = "") -> dict[str, Any]:
    """The single document of a kind whose name ends with name_suffix."""
    found = [d for d in by_kind(docs, kind) if d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, f"expected one {kind} named *{name_suffix}, found {[d['metadata']['name'] for d in found]}"
    return found[0]


def merge(*parts: dict[str, Any]) -> dict[str, Any]:
    """Deep-merges values dictionaries (later wins)."""
    out: dict[str, Any] = {}
    for p in parts:
        for k, v in p.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


@pytest.fixture
def broken_chart(tmp_path: Path):
    """A copy of the chart to break on purpose (proves a check fails on a broken chart)."""
    dst = tmp_path / "cynode"
    shutil.copytree(CHART, dst)
    return dst
