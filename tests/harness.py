"""Start, drive and stop a real `quarry` binary for the black-box tests.

The binary is never built here: `scripts/test` builds it and passes its path in
`QUARRY_BIN` (default: `$CARGO_TARGET_DIR/debug/quarry`). Every server runs in its own
temporary data directory on a free loopback port, and every HTTP call has a timeout,
so a hung server fails a test instead of hanging the suite.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import requests

# Seconds a server may take to answer /readyz 200 after start (WAL replay included).
READY_TIMEOUT_S = 60.0
# Seconds one HTTP request may take before the test fails.
HTTP_TIMEOUT_S = 30.0
# Seconds a server may take to exit after SIGTERM before it is killed.
STOP_TIMEOUT_S = 15.0
# Seconds between two readiness probes.
POLL_INTERVAL_S = 0.05
# Attempts at starting on a fresh port when the chosen one was taken meanwhile.
PORT_ATTEMPTS = 3
# Lines of the server log shown when a test fails.
LOG_TAIL_LINES = 80
# Write key sent by default (any key is accepted when none are configured).
DEFAULT_KEY = "quarry-test-key"


def default_binary() -> Path:
    """The `quarry` binary the tests drive: `$QUARRY_BIN` or the cargo debug build."""
    if os.environ.get("QUARRY_BIN"):
        return Path(os.environ["QUARRY_BIN"])
    target = os.environ.get("CARGO_TARGET_DIR") or str(Path.home() / ".cache/quarry/target")
    return Path(target) / "debug" / "quarry"


def terminate(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if `proc` has not exited within STOP_TIMEOUT_S."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=STOP_TIMEOUT_S)


def free_port() -> int:
    """A loopback TCP port that was free a moment ago (bind to 0, read, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def to_toml(config: dict[str, dict[str, Any]]) -> str:
    """Serialises `{section: {key: value}}` to TOML (ints, floats, bools, strings,
    lists of strings and one level of inline tables are all Quarry's config needs)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{json.dumps(k)} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(f"cannot write {v!r} as TOML")

    lines = []
    for section, keys in config.items():
        lines.append(f"[{section}]")
        lines.extend(f"{k} = {value(v)}" for k, v in keys.items())
        lines.append("")
    return "\n".join(lines)


# Log lines naming the OTLP receivers' bound addresses.
_OTLP_GRPC_LINE = re.compile(r"OTLP/gRPC receiver on [^\s:]+:(\d+)")
_OTLP_HTTP_LINE = re.compile(r"OTLP/HTTP receiver on http://[^\s:]+:(\d+)")
# Log line naming the Postgres wire protocol's bound address.
_PG_LINE = re.compile(r"Postgres wire protocol on [^\s:]+:(\d+)")

_METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)(\s+-?\d+)?$")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {metric name: value summed over all label sets}."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        m = _METRIC_LINE.match(line)
        if m is None:
            raise AssertionError(f"/metrics line is not Prometheus text: {line!r}")
        out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(3))
    return out


_RFC3339 = re.compile(
    r"^(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:?\d\d)?$"
)


def rfc3339_to_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 timestamp, keeping all 9 digits
    (datetime would cut to microseconds). A missing offset means UTC."""
    m = _RFC3339.match(text)
    if m is None:
        raise AssertionError(f"not an RFC 3339 timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    base = dt.datetime(year, month, day, hour, minute, second, tzinfo=dt.timezone.utc)
    frac = int((m.group(7) or "0").ljust(9, "0"))
    offset_s = 0
    zone = m.group(8)
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset_s = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return (int(base.timestamp()) - offset_s) * 1_000_000_000 + frac


def ns_of(when: dt.datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime (exact, no float)."""
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def error_message(resp: requests.Response) -> str:
    """The `error` string of a JSON error body; fails the test if the body is not one."""
    try:
        body = resp.json()
    except ValueError as exc:
        raise AssertionError(
            f"HTTP {resp.status_code} body is not JSON: {resp.text[:500]!r}"
        ) from exc
    assert isinstance(body, dict) and isinstance(body.get("error"), str), (
        f"HTTP {resp.status_code} body is not {{\"error\": \"...\"}}: {body!r}"
    )
    assert body["error"].strip(), f"empty error message (HTTP {resp.status_code})"
    return body["error"]


class LocalObjects:
    """A server's objects in its data directory (the default storage)."""

    def __init__(self, root: Path):
        self.root = root

    def keys(self, prefix: str) -> list[str]:
        """Keys (paths relative to the root) of the files under `prefix`."""
        base = self.root / prefix
        if not base.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in base.rglob("*") if p.is_file())

    def put(self, key: str, body: bytes, age_s: float = 0.0) -> None:
        """Writes a file, last modified `age_s` seconds ago."""
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        then = time.time() - age_s
        os.utime(path, (then, then))

    def exists(self, key: str) -> bool:
        return (self.root / key).is_file()


ObjectFiles = LocalObjects  # or s3_server.S3Objects: the same three methods


class ServerDied(Exception):
    """The server process exited while a test expected it to serve."""


class Quarry:
    """One `quarry serve` process on a data directory that outlives restarts."""

    def __init__(
        self,
        binary: Path,
        workdir: Path,
        config: dict[str, dict[str, Any]] | None = None,
        env: dict[str, str] | None = None,
        durability: str | None = None,
        key: str = DEFAULT_KEY,
        args: list[str] | None = None,
        objects: "ObjectFiles | None" = None,
        storage: dict[str, Any] | None = None,
    ):
        self.binary = binary
        self.workdir = workdir
        self.data_dir = workdir / "data"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path = workdir / "quarry.toml"
        # `[storage]` keys every version of the config file keeps (the test storage).
        self.storage = dict(storage or {})
        self.write_config(config or {})
        self.env = dict(env or {})
        self.durability = durability
        self.key = key
        self.args = list(args or [])
        # Where its segments, rollups and manifest are: the data directory's
        # objects/ unless the test storage (conftest) put them in S3.
        self.objects = objects or LocalObjects(self.data_dir / "objects")
        self.proc: subprocess.Popen | None = None
        self.port = 0
        # OTLP receivers' ports (bound to port 0; read from the server log).
        self.otlp_grpc_port = 0
        self.otlp_http_port = 0
        # The Postgres wire protocol's port (bound to port 0; read from the log).
        self.pg_port = 0
        self.starts = 0
        self.log_path = workdir / "quarry-0.log"

    def write_config(self, config: dict[str, dict[str, Any]], extra: str = "") -> None:
        """(Re)writes the config file (read at the next start): `config`, the test
        storage's keys, then `extra` TOML text (for arrays of tables)."""
        config = {**config, "storage": {**config.get("storage", {}), **self.storage}}
        self.config_path.write_text(to_toml(config) + ("\n" + extra + "\n" if extra else ""))

    # ----------------------------------------------------------------- lifecycle

    @property
    def base(self) -> str:
        """Base URL of the running server."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, env: dict[str, str] | None = None) -> "Quarry":
        """Starts the server (with `env` added for this run only) and waits for
        /readyz 200. Retries on a fresh port if the chosen one was taken."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        last_error: Exception | None = None
        for _ in range(PORT_ATTEMPTS):
            try:
                self._spawn(env)
                self._wait_ready()
                return self
            except ServerDied as exc:
                last_error = exc
                if "in use" not in self.log_text().lower():
                    raise
        raise AssertionError(f"could not start quarry: {last_error}")

    def _spawn(self, env: dict[str, str] | None) -> None:
        self.port = free_port()
        self.log_path = self.workdir / f"quarry-{self.starts}.log"
        self.starts += 1
        cmd = [
            str(self.binary),
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--http",
            f"127.0.0.1:{self.port}",
            "--config",
            str(self.config_path),
            "--otlp-grpc",
            "127.0.0.1:0",
            "--otlp-http",
            "127.0.0.1:0",
            "--pg",
            "127.0.0.1:0",
        ]
        if self.durability:
            cmd += ["--durability", self.durability]
        cmd += self.args
        full_env = dict(os.environ)
        full_env.setdefault("RUST_BACKTRACE", "1")
        full_env.update(self.env)
        full_env.update(env or {})
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=full_env
            )

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if not self.alive():
                raise ServerDied(
                    f"quarry exited with {self.proc.returncode} before ready:\n{self.log_tail()}"
                )
            try:
                if requests.get(self.base + "/readyz", timeout=2).status_code == 200:
                    self._read_otlp_ports()
                    return
            except requests.RequestException:
                pass
            time.sleep(POLL_INTERVAL_S)
        raise AssertionError(f"quarry not ready after {READY_TIMEOUT_S}s:\n{self.log_tail()}")

    def _read_otlp_ports(self) -> None:
        """The OTLP receivers' bound ports, from their log lines (logged before ready)."""
        log = self.log_text()
        grpc = _OTLP_GRPC_LINE.findall(log)
        http = _OTLP_HTTP_LINE.findall(log)
        self.otlp_grpc_port = int(grpc[-1]) if grpc else 0
        self.otlp_http_port = int(http[-1]) if http else 0
        pg = _PG_LINE.findall(log)
        self.pg_port = int(pg[-1]) if pg else 0

    @property
    def otlp_grpc_endpoint(self) -> str:
        """`host:port` of the OTLP/gRPC receiver."""
        assert self.otlp_grpc_port, f"no OTLP/gRPC receiver in the log:\n{self.log_tail()}"
        return f"127.0.0.1:{self.otlp_grpc_port}"

    @property
    def otlp_http_base(self) -> str:
        """Base URL of the OTLP/HTTP receiver's own port."""
        assert self.otlp_http_port, f"no OTLP/HTTP receiver in the log:\n{self.log_tail()}"
        return f"http://127.0.0.1:{self.otlp_http_port}"

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL (kill -9): no shutdown code runs, as in a crash."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL if the server has not exited in time; the exit code."""
        if self.proc is None:
            return None
        if self.alive():
            terminate(self.proc)
        return self.proc.returncode

    def wait_exit(self, timeout_s: float) -> int | None:
        """Waits up to `timeout_s` for the process to exit by itself; its exit code or None."""
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def restart(self, env: dict[str, str] | None = None) -> "Quarry":
        """kill -9 (if running) and start again on the same data directory."""
        self.kill()
        return self.start(env)

    def log_text(self) -> str:
        """Everything the current (or last) process printed."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The last lines of the server log, for failure messages."""
        return "\n".join(self.log_text().splitlines()[-lines:])

    # ----------------------------------------------------------------- HTTP

    def headers(self, key: str | None = None, extra: dict[str, str] | None = None) -> dict:
        """Request headers: the write key (`key=""` sends none) plus `extra`."""
        h = {}
        k = self.key if key is None else key
        if k:
            h["X-Honeycomb-Team"] = k
        h.update(extra or {})
        return h

    def get(self, path: str, key: str | None = None, **kw) -> requests.Response:
        """GET `path` with the write key."""
        return requests.get(self.base + path, headers=self.headers(key), timeout=HTTP_TIMEOUT_S, **kw)

    def post(
        self,
        path: str,
        body: bytes | str | None = None,
        key: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> requests.Response:
        """POST raw bytes to `path`."""
        h = self.headers(key, {"Content-Type": "application/json", **(headers or {})})
        if isinstance(body, str):
            body = body.encode()
        return requests.post(self.base + path, data=body, headers=h, timeout=HTTP_TIMEOUT_S)

    def send_event(
        self, dataset: str, data: Any, key: str | None = None, headers: dict[str, str] | None = None
    ) -> requests.Response:
        """POST /1/events/{dataset} with one JSON event."""
        return self.post(f"/1/events/{dataset}", json.dumps(data), key, headers)

    def send_batch(
        self, dataset: str, items: Any, key: str | None = None, headers: dict[str, str] | None = None
    ) -> requests.Response:
        """POST /1/batch/{dataset} with a JSON array of {"data", "time", "samplerate"}."""
        return self.post(f"/1/batch/{dataset}", json.dumps(items), key, headers)

    def send_batch_ok(self, dataset: str, items: list, key: str | None = None) -> None:
        """Sends a batch and asserts every item was accepted (202)."""
        resp = self.send_batch(dataset, items, key)
        assert resp.status_code == 200, f"batch -> {resp.status_code}: {resp.text[:500]}"
        statuses = resp.json()
        assert [s.get("status") for s in statuses] == [202] * len(items), statuses

    def sql(self, query: str, fmt: str = "json", key: str | None = None) -> requests.Response:
        """POST /api/v1/sql."""
        return self.post("/api/v1/sql", json.dumps({"sql": query, "format": fmt}), key)

    def rows(self, query: str, key: str | None = None) -> list[dict]:
        """SQL rows as JSON objects; fails the test on any error."""
        resp = self.sql(query, "json", key)
        assert resp.status_code == 200, f"SQL {query!r} -> {resp.status_code}: {resp.text[:1000]}"
        rows = resp.json()
        assert isinstance(rows, list), rows
        return rows

    def scalar(self, query: str, key: str | None = None) -> Any:
        """The single value of a one-row, one-column SQL result."""
        rows = self.rows(query, key)
        assert len(rows) == 1 and len(rows[0]) == 1, f"{query!r} -> {rows!r}"
        return next(iter(rows[0].values()))

    def seal(self) -> None:
        """POST /api/v1/admin/seal: every buffer becomes a Parquet segment now."""
        resp = self.post("/api/v1/admin/seal", b"")
        assert resp.status_code in (200, 202, 204), f"seal -> {resp.status_code}: {resp.text[:500]}"

    def metrics(self) -> dict[str, float]:
        """GET /metrics, parsed."""
        resp = requests.get(self.base + "/metrics", timeout=HTTP_TIMEOUT_S)
        assert resp.status_code == 200, resp.text[:500]
        return parse_metrics(resp.text)

    def columns(self, dataset: str, key: str | None = None) -> dict[str, str]:
        """GET /1/columns/{dataset} as {key_name: type}."""
        resp = self.get(f"/1/columns/{dataset}", key)
        assert resp.status_code == 200, f"columns -> {resp.status_code}: {resp.text[:500]}"
        return {c["key_name"]: c["type"] for c in resp.json()}

    def datasets(self, key: str | None = None) -> list[str]:
        """GET /1/datasets as a list of names."""
        resp = self.get("/1/datasets", key)
        assert resp.status_code == 200, f"datasets -> {resp.status_code}: {resp.text[:500]}"
        return [d["name"] for d in resp.json()]


def metric_delta(before: dict[str, float], after: dict[str, float], name: str) -> int:
    """How much counter `name` grew between two /metrics readings (it must exist)."""
    assert name in after, f"/metrics has no {name}; it has {sorted(after)}"
    return int(after[name] - before.get(name, 0.0))
