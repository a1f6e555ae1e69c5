"""Run one heavy job (an export, a training run) in a fresh spawned process.

Framework state is process-global: torch 2.13 freezes an LSTM's sequence axis on a second
in-process ONNX export, TensorFlow fixes its thread pools at first use, and neither gives its
memory back. A child per job starts clean and returns everything when it ends. The job's progress
lines are forwarded; an exception comes back as the same class (looked up by name in the module
given) with the same one-line message, and a child that dies is an error naming its exit code.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
from typing import Any, Callable

Progress = Callable[[str], None]


def run_isolated(
    target: str,
    kwargs: dict[str, Any],
    progress: Progress = lambda line: None,
    errors_module: str = "builtins",
    default_error: str = "RuntimeError",
    what: str = "the job",
) -> Any:
    """`target` ("package.module:function") called as function(**kwargs, progress=...) in a child.

    Exceptions raised by the child are re-raised here as `errors_module.<ClassName>(message)` when
    that class exists there, else as `default_error` naming the unexpected exception."""
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    # Not a daemon: a training run renders its data in a process pool of its own.
    proc = ctx.Process(target=_child, args=(child, target, kwargs), daemon=False)
    proc.start()
    child.close()
    errors = importlib.import_module(errors_module)
    try:
        while True:
            try:
                kind, *payload = parent.recv()
            except EOFError:
                proc.join()
                raise getattr(errors, default_error)(f"{what} died (exit code {proc.exitcode})") from None
            if kind == "progress":
                progress(payload[0])
            elif kind == "done":
                return payload[0]
            else:
                class_name, message = payload
                error_class = getattr(errors, class_name, None)
                if not (isinstance(error_class, type) and issubclass(error_class, Exception)):
                    error_class, message = getattr(errors, default_error), f"{what} failed: {class_name}: {message}"
                raise error_class(message)
    finally:
        parent.close()
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()


def _child(conn, target: str, kwargs: dict[str, Any]) -> None:
    from djserve.quiet import quiet_frameworks

    quiet_frameworks()
    module_name, function_name = target.split(":")
    try:
        function = getattr(importlib.import_module(module_name), function_name)
        result = function(**kwargs, progress=lambda line: conn.send(("progress", line)))
        conn.send(("done", result))
    except Exception as exc:  # every failure is one line for the parent
        message = " ".join(str(exc).split()) or type(exc).__name__
        conn.send(("error", type(exc).__name__, message))
    finally:
        conn.close()
