"""Real processes for the integration tier and the benches: a private Redis, daphne, Celery workers, beat.

Everything listens on 127.0.0.1 on free ports. Each child runs in its own process group, logs to a file in
the directory it is given, and is killed with its whole group (SIGKILL: prefork children included) when
the context that started it ends, when a test fails, and at interpreter exit as a last resort.

Children run the production settings (`treasurehunt.settings`, DJANGO_DEBUG=0) against the database and
Redis they are given: in a test, the pytest-django test database (see `database_url`), which a
`django_db(transaction=True)` test commits to, so the children see its rows.
"""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

import redis

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# The niceness of the clock's worker and beat, as deploy/Procfile's CLOCK_NICE default; other roles run at
# the stack's own.
CLOCK_NICE = 10
NICENESS = {"clock": CLOCK_NICE, "beat": CLOCK_NICE}

T = TypeVar("T")

# Processes started and not yet reaped: killed at exit if a fixture's teardown never ran.
_running: set[Process] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], T], *, timeout: float, what: str, interval: float = 0.05) -> T:
    """Call `check` until it returns something truthy (returned), or fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def database_url(settings_dict: dict) -> str:
    """A DATABASE_URL for a child process from a connection's settings_dict (e.g. the test database's)."""
    user = quote(settings_dict.get("USER") or "", safe="")
    password = quote(settings_dict.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = settings_dict.get("HOST") or "127.0.0.1"
    port = f":{settings_dict['PORT']}" if settings_dict.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{settings_dict['NAME']}"


class Process:
    """One child process in its own process group, output in `log_path`."""

    def __init__(
        self, name: str, argv: list[str], *, env: dict[str, str], log_path: Path, port: int | None = None
    ):
        self.name, self.argv, self.env, self.log_path, self.port = name, argv, env, log_path, port
        self.popen: subprocess.Popen | None = None
        self.offset = 0  # where this run's output starts in the log

    def __repr__(self) -> str:
        return f"<Process {self.name} pid={self.popen.pid if self.popen else None}>"

    def start(self) -> Process:
        self.offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:
            self.popen = subprocess.Popen(
                self.argv,
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _running.add(self)
        return self

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole group: no shutdown code runs, unacknowledged work stays unacknowledged."""
        self._end(signal.SIGKILL, grace=0)

    def stop(self, grace: float = 10) -> None:
        """SIGTERM the group, then SIGKILL what is left after `grace` seconds."""
        self._end(signal.SIGTERM, grace=grace)

    def _end(self, sig: signal.Signals, *, grace: float) -> None:
        if self.popen is None:
            return
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(timeout=grace or 5)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=5)
        # Prefork children can outlive their parent for a moment: make sure the group is gone.
        with suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        _running.discard(self)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, *, timeout: float) -> None:
        """Wait until `text` appears in this run's output; fail early if the process died."""

        def seen() -> bool:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()[-3000:]}")
            return text in self.log()[self.offset :]

        wait_until(seen, timeout=timeout, what=f"{self.name} logging {text!r}")

    def wait_for_port(self, *, timeout: float) -> None:
        def accepting() -> bool:
            if not self.alive:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.log()[-3000:]}")
            with socket.socket() as sock:
                sock.settimeout(0.5)
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(accepting, timeout=timeout, what=f"{self.name} accepting on port {self.port}")


@atexit.register
def _kill_leftovers() -> None:
    for process in list(_running):
        process.kill()


_static_collected = False


def collect_static(env: dict) -> None:
    """Run collectstatic once per test run: production settings serve only files listed in the manifest."""
    global _static_collected
    if not _static_collected:
        subprocess.run(
            [sys.executable, "manage.py", "collectstatic", "--noinput", "-v0"], cwd=ROOT, env=env, check=True
        )
        _static_collected = True


@contextmanager
def flush_retrying(attempts: int = 10) -> Iterator[None]:
    """While active, the flush after a `transaction=True` test is tried again when PostgreSQL cancels it.

    The flush TRUNCATEs every table, taking their locks one by one; a child process in the middle of a
    transaction over two of those tables can deadlock with it, and PostgreSQL then cancels the flush, which
    would leave the test's rows to the next test.
    """
    from django.core.management.base import CommandError
    from django.db import OperationalError
    from django.test import TransactionTestCase

    flush = TransactionTestCase._fixture_teardown

    def flush_again_on_deadlock(self) -> None:
        for attempt in range(attempts):
            try:
                return flush(self)
            except CommandError as exc:
                if attempt == attempts - 1 or not isinstance(exc.__cause__, OperationalError):
                    raise
                print(f"flush cancelled ({exc.__cause__.__class__.__name__}), trying again")
                time.sleep(0.1 * (attempt + 1))

    TransactionTestCase._fixture_teardown = flush_again_on_deadlock
    try:
        yield
    finally:
        TransactionTestCase._fixture_teardown = flush


class RedisServer:
    """A private redis-server (no persistence) that a fault test may stop and start again on the same port."""

    def __init__(self, directory: Path, port: int | None = None):
        self.directory, self.port = directory, port or free_port()
        self.process: Process | None = None

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis.from_url(self.url(db), socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> RedisServer:
        argv = ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port), "--save", "",
                "--appendonly", "no", "--dir", str(self.directory)]  # fmt: skip
        log_path = self.directory / "redis.log"
        self.process = Process("redis", argv, env=dict(os.environ), log_path=log_path, port=self.port).start()
        wait_until(self._pong, timeout=10, what=f"redis-server on port {self.port}")
        return self

    def stop(self) -> None:
        """An outage: the server dies at once and forgets everything (queued tasks included)."""
        if self.process is not None:
            self.process.kill()
            self.process = None

    def _pong(self) -> bool:
        try:
            return self.client().ping()
        except redis.RedisError:
            return False

    @contextmanager
    def running(self) -> Iterator[RedisServer]:
        self.start()
        try:
            yield self
        finally:
            self.stop()


class Stack:
    """The production stack's processes for one database and one Redis: daphne, Celery workers, beat.

    Processes are started by name and stay up until stopped; `stop_all` (run by `running()`) ends them all.
    """

    SECRET_KEY = "integration-stack-only-" + "k" * 40

    def __init__(self, *, database_url: str, redis_url: str, directory: Path, extra_env: dict | None = None):
        self.directory = directory
        self.processes: dict[str, Process] = {}
        self.env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "treasurehunt.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": redis_url,
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": self.SECRET_KEY,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            # Plain HTTP on loopback: no TLS proxy in front.
            "DJANGO_SECURE_SSL_REDIRECT": "0",
            "EMBEDDED_CLOCK": "0",
            "PYTHONUNBUFFERED": "1",
            "LOG_LEVEL": "INFO",
            **(extra_env or {}),
        }

    def __getitem__(self, name: str) -> Process:
        return self.processes[name]

    def _start(
        self, name: str, argv: list[str], *, port: int | None = None, env: dict | None = None
    ) -> Process:
        old = self.processes.get(name)
        if old is not None and old.alive:
            raise RuntimeError(f"{name} is already running")
        env = {**self.env, **(env or {})}
        if NICENESS.get(name):
            argv = ["nice", "-n", str(NICENESS[name]), *argv]
        process = Process(name, argv, env=env, log_path=self.directory / f"{name}.log", port=port)
        self.processes[name] = process.start()
        return process

    def daphne(self, name: str = "web1", *, wait: bool = True) -> Process:
        """daphne with the flags of DESIGN section 2, on a free port (`process.port`)."""
        collect_static(self.env)
        port = free_port()
        argv = [str(BIN / "daphne"), "-e", f"tcp:port={port}:interface=127.0.0.1:backlog=4096",
                "--websocket_timeout", "-1", "--websocket_connect_timeout", "30",
                "treasurehunt.asgi:application"]  # fmt: skip
        process = self._start(name, argv, port=port)
        if wait:
            process.wait_for_port(timeout=30)
        return process

    def worker(self, name: str, queues: str, *, concurrency: int = 2, wait: bool = True) -> Process:
        """A Celery worker consuming `queues` (comma-separated), as in deploy/Procfile."""
        argv = [str(BIN / "celery"), "-A", "treasurehunt", "worker", "-Q", queues, "-c", str(concurrency),
                "--prefetch-multiplier", "1", "-n", f"{name}-{os.getpid()}@127.0.0.1",
                "--without-gossip", "--without-mingle", "-l", "INFO"]  # fmt: skip
        # As in deploy/Procfile: one task at a time needs no more than the pool's minimum of 2 connections.
        process = self._start(name, argv, env={"DB_POOL_MAX": "2"})
        if wait:
            self.wait_ready(name)
        return process

    def beat(self, name: str = "beat", *, wait: bool = True) -> Process:
        """Celery beat with its schedule file in this stack's directory (never in the repository)."""
        argv = [str(BIN / "celery"), "-A", "treasurehunt", "beat", "-l", "INFO",
                "-s", str(self.directory / "celerybeat-schedule")]  # fmt: skip
        process = self._start(name, argv)
        if wait:
            self.wait_ready(name)
        return process

    def wait_ready(self, name: str, timeout: float = 60) -> None:
        """Wait until daphne accepts connections, a worker is connected to the broker, or beat started."""
        process = self.processes[name]
        if process.port is not None:
            process.wait_for_port(timeout=timeout)
        else:
            process.wait_for_log("beat: Starting" if "beat" in process.argv else " ready.", timeout=timeout)

    # The Celery roles of deploy/Procfile (queues, concurrency); web* names are daphne processes.
    WORKERS = {"judge": ("judge,celery", 2), "treasure": ("treasure", 1), "clock": ("clock", 1)}

    def ensure(self, *names: str) -> None:
        """Start the named processes that are not running, side by side, and wait until all are ready."""
        starting = [name for name in names if not self.running(name)]
        for name in starting:
            if name.startswith("web"):
                self.daphne(name, wait=False)
            elif name == "beat":
                self.beat(name, wait=False)
            else:
                queues, concurrency = self.WORKERS[name]
                self.worker(name, queues, concurrency=concurrency, wait=False)
        for name in starting:
            self.wait_ready(name)

    def ensure_stopped(self, *names: str) -> None:
        for name in names:
            if self.running(name):
                self.kill(name)

    def running(self, name: str) -> bool:
        return name in self.processes and self.processes[name].alive

    def kill(self, name: str) -> None:
        self.processes[name].kill()

    def stop(self, name: str) -> None:
        self.processes[name].stop()

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.kill()

    def logs(self) -> str:
        """The tail of every process's log, for a failing test's report."""
        return "\n".join(f"----- {name}\n{p.log()[-4000:]}" for name, p in self.processes.items())

    @contextmanager
    def started(self) -> Iterator[Stack]:
        try:
            yield self
        finally:
            self.stop_all()
