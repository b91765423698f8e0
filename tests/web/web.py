"""Shared by the web demo's tests: where things are, and the skip-outside-CI / fail-in-CI rule for Node, the npm
packages and Chromium (`make web-deps` installs them; `make test` runs it first)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = ROOT / "web_demo"
NODE = os.environ.get("NODE", "/usr/bin/node")
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
INSTALL = "make web-deps (apt-get install nodejs npm chromium; npm ci in web_demo/)"


def missing(what: str) -> None:
    """Skip with the reason outside CI; fail in CI, where make test installs everything."""
    message = f"the web demo's tests need {what}; install it with `{INSTALL}` (make test does)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def node() -> str:
    found = NODE if Path(NODE).is_file() else shutil.which("node")
    if not found:
        missing(f"Node.js ({NODE})")
    return found


def require_browser() -> tuple[str, str]:
    """(node, chromium) when the browser test can run: Node, web_demo/node_modules (playwright-core), the vendored
    runtimes and Chromium."""
    node_path = node()
    if not (WEB / "node_modules" / "playwright-core").is_dir():
        missing("web_demo/node_modules (npm ci)")
    if not (WEB / "vendor" / "litertjs" / "core.js").is_file():
        missing("web_demo/vendor (node scripts/vendor.mjs after npm ci)")
    chromium = CHROMIUM if Path(CHROMIUM).is_file() else shutil.which("chromium")
    if not chromium:
        missing(f"Chromium ({CHROMIUM})")
    return node_path, chromium


def run_node(args: list[str], env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([node(), *args], cwd=WEB, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def node_test(env: dict | None = None) -> str:
    """web_demo/test/preprocess.test.mjs under `node --test`; its TAP output. Fails naming the failing tests."""
    proc = run_node(["--test", "test/preprocess.test.mjs"], env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, "\n".join(l for l in out.splitlines() if "not ok" in l or "Error" in l)[:4000] or out[-4000:]
    return out


def tap_counts(out: str) -> dict[str, int]:
    counts = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "#" and parts[1] in ("tests", "pass", "fail") and parts[2].isdigit():
            counts[parts[1]] = int(parts[2])
    return counts


def write_json(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path
