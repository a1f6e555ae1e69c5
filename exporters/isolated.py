"""Run each export in a fresh process.

Framework exporters keep process-global state: in torch 2.13, a second `torch.onnx.export` of a
model with an LSTM in the same process freezes the LSTM's dynamic sequence axis to the example's
length (the parity gate catches it, but the export fails). A spawned child per export also returns
TensorFlow's and torch's memory to the system when it ends. Errors come back as the same
ExportError subclass with the same one-line message; progress messages are forwarded.
"""

from __future__ import annotations

import multiprocessing as mp
from pathlib import Path

from exporters import errors
from exporters.export import ExportResult, Progress, export_model


def export_isolated(
    name: str,
    repository: Path,
    checkpoint: Path | None = None,
    tolerance: float = 1e-4,
    seed: int = 0,
    progress: Progress = lambda step: None,
    extra: dict | None = None,
    register_in: Path | None = None,
) -> ExportResult:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, name, repository, checkpoint, tolerance, seed, extra, register_in), daemon=True)
    proc.start()
    child.close()
    try:
        while True:
            try:
                kind, *payload = parent.recv()
            except EOFError:
                proc.join()
                raise errors.ExportError(f"{name}: the export process died (exit code {proc.exitcode})") from None
            if kind == "progress":
                progress(payload[0])
            elif kind == "done":
                return payload[0]
            else:
                error_class, message = payload
                raise getattr(errors, error_class, errors.ExportError)(message)
    finally:
        parent.close()
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()


def _child(conn, name, repository, checkpoint, tolerance, seed, extra, register_in) -> None:
    from djserve.quiet import quiet_frameworks

    quiet_frameworks()
    try:
        result = export_model(
            name, repository, checkpoint, tolerance, seed, progress=lambda step: conn.send(("progress", step)), extra=extra,
            register_in=register_in,
        )
        conn.send(("done", result))
    except errors.ExportError as exc:
        conn.send(("error", type(exc).__name__, str(exc)))
    except Exception as exc:  # an unexpected failure is still one line for the user
        conn.send(("error", "ExportError", f"{name}: export failed: {type(exc).__name__}: {errors.one_line(exc)}"))
    finally:
        conn.close()
