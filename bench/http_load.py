"""Load on the apps: `wrk` at a concurrency, and a sequential client of our own.

wrk (Debian's package) runs the throughput rows: one thread is enough for a
single-worker app on two cores, and leaves the other core to the app and
PostgreSQL. Its Lua script asks for random ids of the table, the same sequence
in every run. The sequential client (http.client, one keep-alive connection, a
bounded number of requests) times each request for the c1 latency rows and lets
the wire proxy count what one request sent.
"""

from __future__ import annotations

import http.client
import os
import random
import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

RANDOM_IDS = """-- GET <path><random id in 1..{rows}>
request = function()
  return wrk.format(nil, wrk.path .. math.random(1, {rows}))
end
"""
UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


@dataclass
class Load:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    socket_errors: int


def wrk_missing() -> str | None:
    """Why the throughput rows cannot run here, or None. Under CI wrk must be there."""
    if shutil.which("wrk"):
        return None
    if os.environ.get("CI") == "true":
        raise SystemExit("wrk is not installed (.ci/system-packages installs it)")
    return "skipped: wrk not installed (apt-get install wrk)"


def lua_script(folder: Path, rows: int) -> Path:
    script = folder / "random_ids.lua"
    script.write_text(RANDOM_IDS.format(rows=rows))
    return script


def wrk(url: str, connections: int, seconds: int, script: Path) -> Load:
    """One wrk run; fails on any non-2xx answer (the app is broken, not slow)."""
    result = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    out = result.stdout
    if result.returncode != 0 or "Requests/sec:" not in out:
        raise SystemExit(f"wrk failed on {url}:\n{out}\n{result.stderr}")
    if "Non-2xx or 3xx responses" in out:
        raise SystemExit(f"{url} answered errors under load:\n{out}")
    latency = {
        percent: float(value) * UNITS[unit]
        for percent, value, unit in re.findall(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    }
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert rate is not None  # checked above
    return Load(
        requests_per_second=float(rate.group(1)),
        p50_ms=latency["50"],
        p99_ms=latency["99"],
        socket_errors=sum(map(int, errors.groups())) if errors else 0,
    )


def sequential(port: int, path: str, count: int, rows: int, seed: int = 0) -> list[float]:
    """`count` requests one after the other on one connection: seconds each."""
    ids = random.Random(seed)
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    times = []
    try:
        for _ in range(count):
            start = time.perf_counter()
            connection.request("GET", f"{path}{ids.randint(1, rows)}")
            response = connection.getresponse()
            response.read()
            times.append(time.perf_counter() - start)
            if response.status != 200:
                raise SystemExit(f"GET {path} on port {port}: {response.status}")
    finally:
        connection.close()
    return times


def median_ms(times: list[float]) -> float:
    return statistics.median(times) * 1000
