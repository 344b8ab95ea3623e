"""Fixtures: a factory of `quarry serve` processes in temporary directories.

Nothing is built here; `scripts/test` builds the binary first. When a test fails, the
logs of its servers are copied to tests/artifacts/<test>/ and their tails printed.

With `QUARRY_TEST_STORAGE=s3` every server keeps its objects (segments, rollups, the
manifest) in a real S3-compatible server (SeaweedFS, tests/s3_server.py) started
once for the session, each server under a prefix of its own.
"""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path

import pytest

from harness import Quarry, default_binary
from s3_server import SeaweedS3

# Where the servers keep their objects: "local" (the data directory) or "s3".
STORAGE = os.environ.get("QUARRY_TEST_STORAGE", "local")

ARTIFACTS = Path(__file__).parent / "artifacts"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keeps each phase's report on the item so fixtures know whether the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """The session's S3 server when `QUARRY_TEST_STORAGE=s3`, else None."""
    if STORAGE == "local":
        yield None
        return
    if STORAGE != "s3":
        pytest.fail(f"QUARRY_TEST_STORAGE={STORAGE!r}: expected local or s3", pytrace=False)
    server = SeaweedS3(tmp_path_factory.mktemp("weed")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def quarry_bin() -> Path:
    """Path of the built `quarry` binary."""
    path = default_binary()
    if not path.is_file():
        pytest.fail(
            f"quarry binary not found at {path}: run scripts/test (it builds it) "
            "or set QUARRY_BIN",
            pytrace=False,
        )
    return path


class Servers:
    """Makes servers for one test and cleans them all up afterwards."""

    def __init__(self, binary: Path, tmp_path: Path, s3: SeaweedS3 | None = None):
        self.binary = binary
        self.tmp_path = tmp_path
        self.s3 = s3
        self.all: list[Quarry] = []

    def __call__(self, config=None, env=None, durability=None, start=True, **kw) -> Quarry:
        """A new server on its own data directory, started unless `start=False`."""
        if self.s3 is not None and "storage" not in kw:
            prefix = uuid.uuid4().hex[:12]
            kw["storage"] = self.s3.storage_config(prefix)
            kw["objects"] = self.s3.objects(prefix)
        server = Quarry(
            self.binary,
            self.tmp_path / f"server{len(self.all)}",
            config=config,
            env=env,
            durability=durability,
            **kw,
        )
        self.all.append(server)
        return server.start() if start else server


@pytest.fixture
def quarry(quarry_bin: Path, tmp_path: Path, s3_server, request):
    """Factory: `quarry(config={...}, env={...}, durability="relaxed")` -> running server."""
    servers = Servers(quarry_bin, tmp_path, s3_server)
    yield servers
    for server in servers.all:
        server.stop()
    failed = any(
        getattr(getattr(request.node, f"rep_{phase}", None), "failed", False)
        for phase in ("setup", "call")
    )
    if failed:
        dest = ARTIFACTS / re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
        dest.mkdir(parents=True, exist_ok=True)
        for i, server in enumerate(servers.all):
            for log in server.workdir.glob("quarry-*.log"):
                shutil.copy(log, dest / f"server{i}-{log.name}")
            print(f"\n--- server{i} log tail ({server.log_path}) ---\n{server.log_tail()}")
    for server in servers.all:
        for log in server.workdir.glob("quarry-*.log"):
            text = log.read_text(errors="replace")
            assert "panicked at" not in text, f"quarry panicked ({log}):\n{text[-4000:]}"


@pytest.fixture
def server(quarry) -> Quarry:
    """One running server with the default configuration."""
    return quarry()


@pytest.fixture(scope="module")
def module_quarry(quarry_bin: Path, tmp_path_factory, s3_server, request):
    """Like `quarry`, but the servers live for a whole test module (for tests that share
    one loaded data set)."""
    servers = Servers(quarry_bin, tmp_path_factory.mktemp("module"), s3_server)
    failed_before = request.session.testsfailed
    yield servers
    for server in servers.all:
        server.stop()
    if request.session.testsfailed > failed_before:
        for i, server in enumerate(servers.all):
            print(f"\n--- module server{i} log tail ({server.log_path}) ---\n{server.log_tail()}")
