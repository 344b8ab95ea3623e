"""A real Prometheus for the PromQL tests: Debian's `prometheus`, started on a
free loopback port with a TSDB of its own, scraping the given targets every
second and remote-writing every sample to Quarry; stopped by PID.

`scripts/test` installs the `prometheus` package (which ships `promtool`); a
test module skips (with the reason) only when the binary is absent.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import requests

from harness import free_port, terminate

# Seconds Prometheus may take to become ready.
START_TIMEOUT_S = 30.0


def prometheus_binary() -> str | None:
    """Path of the Prometheus server, if installed."""
    return shutil.which("prometheus")


def promtool_binary() -> str | None:
    """Path of promtool, if installed."""
    return shutil.which("promtool")


class Prometheus:
    """One Prometheus process: scrapes `targets` (job name -> host:port) every
    second and remote-writes to `remote_write_url` within a second."""

    def __init__(self, workdir: Path, targets: dict[str, str], remote_write_url: str):
        self.binary = prometheus_binary()
        assert self.binary, "prometheus is not installed"
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.targets = dict(targets)
        self.remote_write_url = remote_write_url
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def config(self) -> str:
        scrapes = "".join(
            f"  - job_name: {job}\n"
            f"    static_configs:\n"
            f"      - targets: ['{target}']\n"
            for job, target in self.targets.items()
        )
        return (
            "global:\n"
            "  scrape_interval: 1s\n"
            "  evaluation_interval: 1s\n"
            "scrape_configs:\n"
            f"{scrapes}"
            "remote_write:\n"
            f"  - url: {self.remote_write_url}\n"
            "    queue_config:\n"
            "      batch_send_deadline: 500ms\n"
            "      min_backoff: 100ms\n"
            "      max_backoff: 1s\n"
        )

    def start(self) -> "Prometheus":
        (self.workdir / "prometheus.yml").write_text(self.config())
        log = open(self.workdir / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            [
                self.binary,
                f"--config.file={self.workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--log.level=warn",
                # Keeps the exemplars of scraped OpenMetrics histograms.
                "--enable-feature=exemplar-storage",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"prometheus exited: {self.log_text()}"
            try:
                if requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"prometheus did not become ready: {self.log_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            terminate(self.proc)

    def log_text(self) -> str:
        path = self.workdir / "prometheus.log"
        return path.read_text(errors="replace")[-4000:] if path.exists() else ""
