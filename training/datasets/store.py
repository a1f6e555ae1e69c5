"""Generated datasets on disk: built once, reused by every run with the same generator parameters.

A dataset is a folder `<name>-<hash of its parameters>/` holding `arrays.npz` (the tensors),
`rows.json` (per-sample records: mix parameters, track lists) and `manifest.json` (name, generator
version, parameters, sizes and the sha256 of both files). Loading verifies the hashes, so a
truncated or edited dataset is one clear error instead of a model trained on garbage.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import shutil
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from training.base import Progress, no_progress
from training.errors import DatasetError

MANIFEST = "manifest.json"
ARRAYS = "arrays.npz"
ROWS = "rows.json"


@dataclass
class StoredDataset:
    path: Path
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]
    rows: list[dict[str, Any]]

    @property
    def content_hash(self) -> str:
        return self.manifest["content_sha256"]


def params_hash(params: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load(path: Path, expected_name: str | None = None) -> StoredDataset:
    """A stored dataset, verified; DatasetError naming the problem otherwise."""
    path = Path(path)
    if not path.is_dir():
        raise DatasetError(f"dataset {path} does not exist")
    manifest_path = path / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
    except FileNotFoundError:
        raise DatasetError(f"dataset {path} has no {MANIFEST} (not a dataset, or its build was interrupted)") from None
    except json.JSONDecodeError as exc:
        raise DatasetError(f"dataset {path}: {MANIFEST} is not valid JSON ({exc})") from None
    if expected_name and manifest.get("name") != expected_name:
        raise DatasetError(f"dataset {path} is a {manifest.get('name')!r} dataset; this model needs {expected_name!r}")
    for file_name, key in ((ARRAYS, "arrays_sha256"), (ROWS, "rows_sha256")):
        f = path / file_name
        if not f.is_file():
            raise DatasetError(f"dataset {path} is missing {file_name}")
        if _file_sha256(f) != manifest.get(key):
            raise DatasetError(f"dataset {path}: {file_name} does not match its manifest (modified or truncated); rebuild it")
    try:
        with np.load(path / ARRAYS) as npz:
            arrays = {k: npz[k] for k in npz.files}
        rows = json.loads((path / ROWS).read_text())
    except Exception as exc:  # a verified file that still does not parse: a different numpy, a bug
        raise DatasetError(f"dataset {path} cannot be read: {type(exc).__name__}: {exc}") from None
    missing = [k for k in manifest.get("arrays", []) if k not in arrays]
    if missing:
        raise DatasetError(f"dataset {path} lacks arrays {missing}")
    return StoredDataset(path, manifest, arrays, rows)


def save(target: Path, name: str, params: dict[str, Any], arrays: dict[str, np.ndarray], rows: list[dict]) -> StoredDataset:
    """Write a dataset atomically (a staging folder renamed into place)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        np.savez(staging / ARRAYS, **arrays)
        (staging / ROWS).write_text(json.dumps(rows, sort_keys=True))
        arrays_sha, rows_sha = _file_sha256(staging / ARRAYS), _file_sha256(staging / ROWS)
        manifest = {
            "name": name,
            "params": params,
            "arrays": sorted(arrays),
            "shapes": {k: list(v.shape) for k, v in arrays.items()},
            "arrays_sha256": arrays_sha,
            "rows_sha256": rows_sha,
            "content_sha256": hashlib.sha256((arrays_sha + rows_sha).encode()).hexdigest(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return load(target, name)


def cached(
    root: Path,
    name: str,
    params: dict[str, Any],
    build: Callable[[Progress], tuple[dict[str, np.ndarray], list[dict]]],
    progress: Progress = no_progress,
) -> StoredDataset:
    """The dataset for these parameters: loaded from `root` if it was built before, else built."""
    target = Path(root) / f"{name}-{params_hash(params)[:12]}"
    if (target / MANIFEST).exists():
        progress(f"loading the {name} dataset from {target}")
        return load(target, name)
    arrays, rows = build(progress)
    progress(f"saving the {name} dataset to {target}")
    return save(target, name, params, arrays, rows)


def parallel_map(fn: Callable[[int], Any], items: Iterable[int], total: int, label: str, progress: Progress, workers: int = 2) -> list[Any]:
    """fn over items in `workers` spawned processes (1: in this process), order kept, with progress."""
    items = list(items)
    out: list[Any] = []
    step = max(1, total // 50)
    if workers <= 1:
        for i, item in enumerate(items, 1):
            out.append(fn(item))
            if i % step == 0 or i == total:
                progress(f"{label} {i}/{total}")
        return out
    with mp.get_context("spawn").Pool(workers, initializer=_single_thread) as pool:
        for i, result in enumerate(pool.imap(fn, items, chunksize=4), 1):
            out.append(result)
            if i % step == 0 or i == total:
                progress(f"{label} {i}/{total}")
    return out


def _single_thread() -> None:
    """Each worker on one core: BLAS threads per worker would oversubscribe a small machine."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
