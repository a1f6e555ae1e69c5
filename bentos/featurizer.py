"""Where an uploaded set's windows are decoded and featurised: in child processes at a lower CPU
priority (the default), or in the gateway worker's own threads.

Decoding and librosa features cost seconds of CPU per set. In the worker's threads they hold the
interpreter lock that every chat message and live chunk needs too, at the same CPU priority; at 16
users that took live beats past their 100 ms p95. A child process per admitted upload (as many as
`judge_max_concurrent` admits) has its own interpreter and runs at `nice` +10, so the kernel serves
the real-time requests first and the uploads take the cores that are left.

A child serves one set at a time over a socket pair; every message the parent sends gets exactly one
reply, and a window is sent only when the parent asks for the next one (the judge scores window i
while the child featurises window i+1, so memory holds two windows):

    parent: ("job", data, format, limits) | "next" | "stop"
    child:  ("ready",) once warm | ("window", Window) | ("end", bpm, beats) | ("error", code, message)
            | ("stopped",) | ("failed", message)

A child that dies, hangs past the timeout or answers out of turn is killed and replaced; the set it
was featurising is answered 503 with Retry-After and every other request goes on.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import pickle
import socket
import subprocess
import sys
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from bentos import audio
from bentos.errors import GatewayError
from djserve.process import lower_cpu_priority

log = logging.getLogger("djserve.gateway.featurizer")

_HEADER = 8  # bytes of a frame's length
STARTUP_TIMEOUT_S = 120.0
"""A new child's import and warm-up (numba JIT: ~4 s of a core) may take this long on busy cores."""
_LOST = object()
_NO_BEAT_MEL = np.zeros((0, 0), np.float32)  # the judge's models do not read it: not worth the copy


class WindowStream(Protocol):
    """An uploaded set's windows, in order, then its tempo."""

    async def next_batch(self) -> list[audio.Window]:
        """The next window(s); [] once the set is done. Raises `audio.AudioError` for a file that
        breaks midway."""

    async def tempo(self) -> tuple[float, list[float]]:
        """BPM and beat times of the whole set, once `next_batch` has returned []."""


class Featurizer(Protocol):
    def start(self) -> None: ...

    def close(self) -> None: ...

    def open(self, source: audio.AudioSource) -> AbstractAsyncContextManager[WindowStream]:
        """The set's windows while the block runs; the featurizer is free for another set after it."""


class FeaturizerLost(GatewayError):
    status = 503

    def __init__(self, why: str, retry_after_s: int):
        super().__init__(
            "featurizer_unavailable",
            f"the audio analysis process {why}; it has been replaced, retry after {retry_after_s} s",
            headers={"Retry-After": str(retry_after_s)},
        )


@functools.cache
def _restarts():
    import prometheus_client as prom

    return prom.Counter("ai_featurizer_restarts_total", "Upload featurisation processes replaced, by why", ("reason",))


# --- in the worker's threads --------------------------------------------------------------------


class ThreadFeaturizer:
    """Featurise in the gateway worker's default thread pool (one window ahead, as the processes)."""

    def start(self) -> None:
        pass

    def close(self) -> None:
        pass

    @asynccontextmanager
    async def open(self, source: audio.AudioSource) -> AsyncIterator[WindowStream]:
        yield _ThreadStream(source)


class _ThreadStream:
    def __init__(self, source: audio.AudioSource) -> None:
        self._windows = source.windows()
        self._envelopes: list[np.ndarray] = []

    async def next_batch(self) -> list[audio.Window]:
        window = await asyncio.to_thread(next, self._windows, None)
        if window is None:
            return []
        self._envelopes.append(window.onset_envelope)
        return [window]

    async def tempo(self) -> tuple[float, list[float]]:
        return await asyncio.to_thread(audio.tempo_and_beats, np.concatenate(self._envelopes))


# --- in child processes -------------------------------------------------------------------------


class ProcessFeaturizer:
    """`size` warm child processes at `nice`; a set waits for a free one (admission keeps that rare)."""

    def __init__(self, size: int, nice: int, timeout_s: float, retry_after_s: int) -> None:
        self.size, self.nice, self.timeout_s, self.retry_after_s = size, nice, timeout_s, retry_after_s
        self._idle: asyncio.Queue[_Child] = asyncio.Queue()
        self._children: set[_Child] = set()
        self._settling: set[asyncio.Task] = set()

    def start(self) -> None:
        """Spawn the children now, so they warm up (numba JIT) before the first upload."""
        while len(self._children) < self.size:
            self._add(_Child(self.nice))

    def close(self) -> None:
        for child in list(self._children):
            child.kill()
        self._children.clear()

    @property
    def pids(self) -> list[int]:
        return [c.proc.pid for c in self._children]

    @asynccontextmanager
    async def open(self, source: audio.AudioSource) -> AsyncIterator[WindowStream]:
        self.start()
        child = await self._idle.get()
        if not child.alive:
            child = self._replace(child, "died_idle")
        stream = _ProcessStream(child, source, self)
        try:
            yield stream
        finally:
            if not child.alive:
                self._idle.put_nowait(self._replace(child, "lost"))
            elif child.idle:
                self._idle.put_nowait(child)
            else:  # abandoned midway (an error, a cancelled request): settle it without the caller
                task = asyncio.get_running_loop().create_task(self._settle(child))
                self._settling.add(task)
                task.add_done_callback(self._settling.discard)

    async def _settle(self, child: _Child) -> None:
        """Stop the child's set and read what it still owes, then put it back; kill it if that fails."""
        try:
            while child.alive and not child.idle:
                if child.pending == 0:  # it waits for "next" or "stop" after a window
                    await child.send("stop")
                await asyncio.wait_for(child.reply(), self.timeout_s)
        except (asyncio.TimeoutError, _ChildLost):
            pass
        if child.alive and child.idle:
            self._idle.put_nowait(child)
        else:
            self._idle.put_nowait(self._replace(child, "unsettled"))

    def _add(self, child: _Child) -> _Child:
        self._children.add(child)
        self._idle.put_nowait(child)
        return child

    def _replace(self, child: _Child, reason: str) -> _Child:
        """A new child in place of `child`; `reason` (lost, died_idle, unsettled) labels the restart."""
        log.warning("featurizer process %s replaced (%s, exit %s)", child.proc.pid, reason, child.proc.poll())
        _restarts().labels(reason=reason).inc()
        child.kill()
        self._children.discard(child)
        new = _Child(self.nice)
        self._children.add(new)
        return new

    async def request(self, child: _Child, message) -> tuple:
        """Send one message and return the child's reply; a dead, silent or confused child is replaced
        (FeaturizerLost, 503) so the next set gets a healthy one."""
        try:
            await child.send(message)
            return await asyncio.wait_for(child.reply(), self.timeout_s)
        except _ChildLost:
            why = f"stopped (exit {child.proc.poll()})"
        except asyncio.TimeoutError:
            why = f"did not answer within {self.timeout_s:g} s"
        child.kill()  # the pool replaces it when the stream closes (child.alive is False)
        raise FeaturizerLost(why, self.retry_after_s)


class _ProcessStream:
    def __init__(self, child: _Child, source: audio.AudioSource, pool: ProcessFeaturizer) -> None:
        self._child, self._source, self._pool = child, source, pool
        self._started = False
        self._tempo: tuple[float, list[float]] | None = None

    async def next_batch(self) -> list[audio.Window]:
        if self._tempo is not None:
            return []
        if not self._started:
            self._started = True
            await self._expect_ready()
            message = ("job", self._source.data, self._source.format, self._source.limits)
        else:
            message = "next"
        reply = await self._pool.request(self._child, message)
        kind = reply[0]
        if kind == "window":
            return [reply[1]]
        if kind == "end":
            self._tempo = (reply[1], reply[2])
            return []
        if kind == "error":
            raise audio.AudioError(reply[1], reply[2])
        raise RuntimeError(f"the featurizer process failed: {reply[-1]}")

    async def tempo(self) -> tuple[float, list[float]]:
        assert self._tempo is not None, "tempo is known once next_batch has returned []"
        return self._tempo

    async def _expect_ready(self) -> None:
        try:
            await self._child.connect()
            await asyncio.wait_for(self._child.ready.wait(), STARTUP_TIMEOUT_S)
        except asyncio.TimeoutError:
            pass
        if not self._child.alive:
            raise FeaturizerLost("did not start", self._pool.retry_after_s)
        if not self._child.ready.is_set():
            self._child.kill()
            raise FeaturizerLost(f"was not ready within {STARTUP_TIMEOUT_S:g} s", self._pool.retry_after_s)


class _ChildLost(Exception):
    pass


class _Child:
    """One child process and its end of the socket pair; replies are read by a task of the loop."""

    def __init__(self, nice: int) -> None:
        self._sock, theirs = socket.socketpair()
        root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, (root, os.environ.get("PYTHONPATH"))))}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bentos.featurizer", str(theirs.fileno()), str(nice)],
            pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, env=env, cwd=root,
        )
        theirs.close()
        self.pending = 0  # replies owed to messages sent
        self.in_set = False  # a job was sent and its last reply (end, error, stopped, failed) not yet read
        self.ready = asyncio.Event()
        """Set once the child has warmed up (or is lost: then `alive` says so)."""
        self._replies: asyncio.Queue = asyncio.Queue()
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task | None = None
        self._killed = self._lost = False

    @property
    def alive(self) -> bool:
        return not (self._killed or self._lost) and self.proc.poll() is None

    async def connect(self) -> None:
        if self._writer is None:
            reader, self._writer = await asyncio.open_unix_connection(sock=self._sock)
            self._reader_task = asyncio.get_running_loop().create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(_HEADER), "big")
                reply = pickle.loads(await reader.readexactly(size))
                if reply == ("ready",):
                    self.ready.set()
                else:
                    self._replies.put_nowait(reply)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            self._lost = True  # its end closed: dead or dying, either way no longer usable
            self._replies.put_nowait(_LOST)
            self.ready.set()

    async def send(self, message) -> None:
        await self.connect()
        if not self.alive:
            raise _ChildLost()
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self._writer.write(len(payload).to_bytes(_HEADER, "big"))
        self._writer.write(payload)
        self.pending += 1
        if isinstance(message, tuple) and message[0] == "job":
            self.in_set = True
        try:
            await self._writer.drain()
        except (ConnectionError, OSError):
            raise _ChildLost() from None

    async def reply(self):
        await self.connect()
        reply = await self._replies.get()
        if reply is _LOST:
            self._replies.put_nowait(_LOST)  # every later read sees it too
            raise _ChildLost()
        self.pending -= 1
        if reply[0] != "window":
            self.in_set = False
        return reply

    @property
    def idle(self) -> bool:
        """Owes nothing and waits for a job."""
        return self.pending == 0 and not self.in_set

    def kill(self) -> None:
        if self._killed:
            return
        self._killed = True
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            if self._writer is not None:
                self._writer.close()
        except RuntimeError:  # its event loop is already closed (a shutdown)
            pass
        self._sock.close()
        try:
            self.proc.wait(timeout=5)  # SIGKILL: immediate; reaped so no zombie is left
        except subprocess.TimeoutExpired:
            pass


# --- the child's side ---------------------------------------------------------------------------


def _send(sock: socket.socket, message) -> None:
    payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(len(payload).to_bytes(_HEADER, "big"))
    sock.sendall(payload)


def _recv(sock: socket.socket):
    def exactly(n: int) -> bytes:
        buf = bytearray(n)
        view, got = memoryview(buf), 0
        while got < n:
            k = sock.recv_into(view[got:])
            if k == 0:
                raise EOFError
            got += k
        return bytes(buf)

    return pickle.loads(exactly(int.from_bytes(exactly(_HEADER), "big")))


def _featurise(sock: socket.socket, data: bytes, fmt: str, limits: audio.AudioLimits) -> None:
    """One set: a window per "next", then the tempo; an AudioError is the reply it happens in."""
    try:
        source = audio.open_audio(data, limits, fmt)
        envelopes = []
        for window in source.windows():
            envelopes.append(window.onset_envelope)
            _send(sock, ("window", dataclasses.replace(window, beat_mel=_NO_BEAT_MEL)))
            message = _recv(sock)
            if message != "next":
                _send(sock, ("stopped",) if message == "stop" else ("failed", f"unexpected message {message!r}"))
                return
        bpm, beats = audio.tempo_and_beats(np.concatenate(envelopes))
        _send(sock, ("end", bpm, beats))
    except audio.AudioError as exc:
        _send(sock, ("error", exc.code, exc.message))
    except (EOFError, ConnectionError):
        raise
    except Exception as exc:  # a bug, not the file: the parent answers it as the thread path would
        log.exception("featurising a set failed")
        _send(sock, ("failed", f"{type(exc).__name__}: {exc}"))


def main(fd: int, nice: int) -> None:
    lower_cpu_priority(nice)
    threadpool_limits(1, user_api="blas")  # as the gateway worker: a background job needs no BLAS pool
    sock = socket.socket(fileno=fd)
    audio.warm_up()
    _send(sock, ("ready",))
    while True:
        try:
            message = _recv(sock)
        except (EOFError, ConnectionError):
            return  # the gateway worker is gone: so is its featurizer
        if message == "stop":  # a stop that crossed the end of a set
            _send(sock, ("stopped",))
        elif isinstance(message, tuple) and message[0] == "job":
            try:
                _featurise(sock, *message[1:])
            except (EOFError, ConnectionError):
                return
        else:
            _send(sock, ("failed", f"unexpected message {message!r}"))


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main(int(sys.argv[1]), int(sys.argv[2]))
