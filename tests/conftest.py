"""Shared fixtures.

`demo_root`: a small synthetic UrbanSound8K-layout dataset (6 clips per class = 60 clips, every fold
non-empty, all WAV encodings, sample rates 8-96 kHz and mono/stereo present), generated once per test
session. Treat it as read-only: tests that damage a dataset must copy it first (`copy_dataset`).

`postgres`: a throwaway PostgreSQL server on localhost (skipped where the server binaries are not
installed), which a test may stop and start again; `postgres_url` is its URL.

`base` (per test module): a folder holding a dataset copy (`ds`), the tiny space and a study `s` of 3
finished trials; `work`: a private copy of it, to damage.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

DEMO_SEED = 0
DEMO_CLIPS_PER_CLASS = 6


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    from nas.data.synth import generate

    return generate(tmp_path_factory.mktemp("demo_data") / "UrbanSound8K", seed=DEMO_SEED,
                    clips_per_class=DEMO_CLIPS_PER_CLASS, progress=False)


@pytest.fixture
def copy_dataset(demo_root, tmp_path):
    """Return a function making a private, modifiable copy of the demo dataset."""
    def make(name: str = "ds") -> Path:
        dst = tmp_path / name
        shutil.copytree(demo_root, dst)
        return dst
    return make


class PostgresServer:
    """A real PostgreSQL server in a temporary folder, run as user postgres when we are root
    (initdb refuses root)."""

    def __init__(self, bindir: Path):
        self.bindir, self.base = bindir, Path(tempfile.mkdtemp(prefix="nas-pg-"))  # outside pytest's root-only tmp
        self.data, self.sock = self.base / "data", self.base / "sock"
        self.sock.mkdir()
        self.prefix: list[str] = []
        if os.geteuid() == 0:
            self.prefix = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.base, "postgres")
            shutil.chown(self.sock, "postgres")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"postgresql://nas@127.0.0.1:{self.port}/nas"
        subprocess.run([*self.prefix, str(bindir / "initdb"), "-D", str(self.data), "-U", "nas", "--auth=trust",
                        "-E", "UTF8"], check=True, capture_output=True)

    def start(self) -> None:
        subprocess.run([*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.base / "log"),
                        "-w", "start", "-o", f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1"],
                       check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run([*self.prefix, str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop"],
                       capture_output=True)


@pytest.fixture(scope="session")
def postgres():
    bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not bins:
        pytest.skip("PostgreSQL server binaries not installed (Debian package 'postgresql')")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
    server = PostgresServer(Path(bins[-1]).parent)
    server.start()
    try:
        subprocess.run([str(server.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(server.port), "-U", "nas",
                        "nas"], check=True, capture_output=True)
        yield server
    finally:
        server.stop()
        shutil.rmtree(server.base, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres) -> str:
    return postgres.url


@pytest.fixture(scope="module")
def base(tmp_path_factory, demo_root) -> Path:
    """A folder holding a dataset copy (`ds`), the tiny space and a study `s` of 3 finished trials."""
    from _proc import ok, run, search_cmd, tiny_space

    cwd = tmp_path_factory.mktemp("base")
    shutil.copytree(demo_root, cwd / "ds")
    tiny_space(cwd)
    ok(run(search_cmd(cwd, cwd / "ds", "--trials", "3", "--study", "s"), cwd))
    return cwd


@pytest.fixture
def work(base, tmp_path) -> Path:
    """A private copy of `base`, to damage."""
    cwd = tmp_path / "w"
    shutil.copytree(base, cwd, symlinks=True)
    return cwd
