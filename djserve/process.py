"""A server the stack starts as a child: own process group, log file, readiness wait, group stop.

Shared by the embedded Triton and the gateway, so both stop the same way: SIGTERM to the whole
group (the server and anything it spawned), SIGKILL after a timeout, stray descendants killed.
"""

from __future__ import annotations

import atexit
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections import deque
from pathlib import Path
from typing import Callable, Mapping, Sequence


class ProcessStartError(RuntimeError):
    """The child exited or did not become ready in time; the message carries its log tail."""


class ChildProcess:
    def __init__(self, name: str, log_file: Path, tail_cut: str | None = None):
        self.name = name
        self.tail_cut = tail_cut
        """Log text from this marker on is noise in an error message (Triton's usage after a bad flag)."""
        self.log_file = Path(log_file).resolve()
        self.process: subprocess.Popen | None = None
        self._log_handle = None
        self._log_offset = 0
        self._descendants: list = []

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, argv: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> None:
        if self.is_running():
            raise RuntimeError(f"{self.name} already running (pid {self.pid})")
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self._log_handle = open(self.log_file, "ab")
        self._log_handle.write(f"\n=== djserve: starting {self.name} at {time.ctime()} ===\n".encode())
        self._log_handle.flush()
        self._log_offset = self._log_handle.tell()
        self.process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            # Own session and process group: Ctrl+C in a terminal reaches us, not the child and its
            # workers directly, and stop() can signal the whole group at once.
            start_new_session=True,
        )
        atexit.register(self.stop)

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `ready` until True; raise ProcessStartError if the child exits first or time runs out."""
        assert self.process is not None, f"{self.name} was not started"
        deadline = time.monotonic() + timeout
        while True:
            rc = self.process.poll()
            if rc is not None:
                raise ProcessStartError(
                    f"{self.name} exited with code {rc} before {what}; last lines of {self.log_file}:\n{self.log_tail()}"
                )
            if ready():
                return
            if time.monotonic() >= deadline:
                raise ProcessStartError(
                    f"{self.name} (pid {self.pid}) not {what} after {timeout:g} s; "
                    f"last lines of {self.log_file}:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM the group, SIGKILL after `timeout`, kill stray descendants. Safe to call twice."""
        atexit.unregister(self.stop)
        proc = self.process
        if proc is None:
            return None
        pgid = proc.pid  # start_new_session: the child leads its own group
        descendants = _descendants(proc.pid)
        if proc.poll() is None:
            _killpg(pgid, signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _killpg(pgid, signal.SIGKILL)
                proc.wait()
        _killpg(pgid, signal.SIGKILL)  # workers that outlived their parent in the same group
        for child in descendants:
            _kill_if_alive(child)
        if self._log_handle:
            self._log_handle.close()
            self._log_handle = None
        return proc.returncode

    def log_tail(self, lines: int = 30) -> str:
        """The last `lines` lines this run wrote (before `tail_cut`, if it appears)."""
        try:
            with open(self.log_file, "rb") as f:
                f.seek(max(self._log_offset, f.seek(0, os.SEEK_END) - (1 << 20)))  # last MiB at most
                text = f.read().decode("utf-8", "replace")
        except OSError as e:
            return f"(cannot read {self.log_file}: {e})"
        if self.tail_cut and self.tail_cut in text:
            text = text.split(self.tail_cut, 1)[0]
        return "\n".join(deque(text.rstrip().splitlines(), maxlen=lines))


class ManagedServer:
    """Context manager of a server with start(), wait_ready() and stop(): ready on enter (stopped
    again if it never gets there), stopped on exit."""

    def start(self):  # pragma: no cover - interface
        raise NotImplementedError

    def wait_ready(self, timeout: float | None = None) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def stop(self, timeout: float = 15.0) -> int | None:  # pragma: no cover - interface
        raise NotImplementedError

    def __enter__(self):
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def http_status(url: str, timeout: float = 2.0) -> int | None:
    """HTTP status of a GET, None when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _descendants(pid: int) -> list:
    try:
        import psutil

        return psutil.Process(pid).children(recursive=True)
    except Exception:  # noqa: BLE001 - psutil missing or process gone: the group kill covers it
        return []


def _kill_if_alive(proc) -> None:
    try:
        if proc.is_running():
            proc.kill()
            proc.wait(timeout=5)
    except Exception:  # noqa: BLE001 - already gone
        pass


def _killpg(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def lower_cpu_priority(increment: int) -> None:
    """Lower this whole process's CPU priority by `increment`. On Linux a nice value belongs to a
    thread, and the thread pools numpy and friends start at import would keep theirs: set every thread."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        os.nice(increment)
        return
    for tid in (int(t) for t in os.listdir(tasks)):
        try:
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + increment)
        except ProcessLookupError:  # a thread that ended meanwhile
            pass


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` now (for servers started on the side: tests, the benchmark)."""
    import socket

    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]
