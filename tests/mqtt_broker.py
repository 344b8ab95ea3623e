"""A real MQTT broker for the stream-source tests: Debian's `mosquitto`, started on a
free loopback port in a directory of its own and stopped by PID.

`scripts/test` installs the `mosquitto` package; a test module skips (with the
reason) only when the binary is absent.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

from harness import free_port, terminate

# Seconds the broker may take to accept connections.
START_TIMEOUT_S = 10.0


def mosquitto_binary() -> str | None:
    """Path of the mosquitto broker, if installed."""
    return shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").is_file() else None
    )


class Mosquitto:
    """One mosquitto process; its sessions and queued QoS 1 messages are kept on
    disk across restarts (persistence on, saved at shutdown)."""

    def __init__(self, workdir: Path):
        self.binary = mosquitto_binary()
        assert self.binary, "mosquitto is not installed"
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> "Mosquitto":
        config = self.workdir / "mosquitto.conf"
        config.write_text(
            "\n".join(
                [
                    f"listener {self.port} 127.0.0.1",
                    "allow_anonymous true",
                    "persistence true",
                    f"persistence_location {self.workdir}/",
                    "max_queued_messages 100000",
                    "max_inflight_messages 20",
                    "log_dest stdout",
                    "log_type error",
                    "log_type warning",
                    "log_type notice",
                    "log_type information",
                    "",
                ]
            )
        )
        log = open(self.workdir / f"mosquitto-{self.starts}.log", "wb")
        self.starts += 1
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(config)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"mosquitto exited: {self.log_text()}"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"mosquitto did not listen on {self.port}: {self.log_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            terminate(self.proc)

    def log_text(self) -> str:
        return "\n".join(
            path.read_text(errors="replace") for path in sorted(self.workdir.glob("mosquitto-*.log"))
        )
