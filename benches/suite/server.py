"""Starting a Quarry server on a temporary data directory and watching its CPU time."""

import os
import re
import signal
import subprocess
import time
from pathlib import Path

import requests

LISTENING = re.compile(r"listening on (http://\S+)")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class QuarryServer:
    """One `quarry serve` process on an ephemeral port."""

    # Files replaced by compaction are deleted at once (not after the usual grace
    # period), so DuckDB and chDB, which read every file under segments/, see
    # exactly the manifest's segments.
    DEFAULT_CONFIG = "[compaction]\ndeletion_delay_secs = 0\n"

    def __init__(self, binary: Path, data_dir: Path, log_path: Path, durability: str = "fsync",
                 config: str = DEFAULT_CONFIG, flags: list[str] | None = None):
        self.binary = binary
        self.data_dir = data_dir
        self.log_path = log_path
        self.durability = durability
        self.config_text = config
        self.flags = list(flags or [])
        self.process = None
        self.url = None

    def start(self) -> "QuarryServer":
        # A restart appends to the same log: look only at what this start writes.
        offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.log = open(self.log_path, "ab")
        cmd = [
            str(self.binary), "serve",
            "--data-dir", str(self.data_dir),
            "--http", "127.0.0.1:0",
            # OTLP receivers on free ports (the defaults 4317/4318 may be taken).
            "--otlp-grpc", "127.0.0.1:0",
            "--otlp-http", "127.0.0.1:0",
            "--pg", "127.0.0.1:0",
            "--durability", self.durability,
            "--config", str(self._config()),
            *self.flags,
        ]
        env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "info"), NO_COLOR="1")
        self.process = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"quarry exited with {self.process.returncode}; see {self.log_path}")
            with open(self.log_path, "rb") as log:
                log.seek(offset)
                match = LISTENING.search(log.read().decode(errors="replace"))
            if match:
                self.url = match.group(1).rstrip(".,")
                if self._ready():
                    return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"quarry did not start within {START_TIMEOUT_S} s; see {self.log_path}")

    def _config(self) -> Path:
        path = self.log_path.with_suffix(".toml")
        path.write_text(self.config_text)
        return path

    def _ready(self) -> bool:
        try:
            return requests.get(f"{self.url}/readyz", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server so far (/proc/<pid>/stat, fields 14 and 15)."""
        stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        # The command name may hold spaces; fields after it are space-separated.
        fields = stat[stat.rindex(")") + 2:].split()
        utime, stime = int(fields[11]), int(fields[12])
        return (utime + stime) / CLOCK_TICKS

    def rss_bytes(self) -> int:
        """Resident memory of the server now."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def seal(self) -> None:
        response = requests.post(f"{self.url}/api/v1/admin/seal", timeout=600)
        response.raise_for_status()

    def compact(self) -> dict:
        """One compaction pass now (merges small segments of a partition)."""
        response = requests.post(f"{self.url}/api/v1/admin/compact", timeout=3600)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "log", None):
            self.log.close()
