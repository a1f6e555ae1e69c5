"""Locate the `tritonserver` shipped in the `nvidia-pytriton` wheel and assemble its backends.

The wheel carries the binary, the python backend library and one python-backend stub per Python
minor version, but no ready backend directory. `assemble_backends` builds one:

    <target>/python/       libtriton_python.so, triton_python_backend_utils.py,
                           triton_python_backend_stub (for the RUNNING Python)
    <target>/onnxruntime/  model.py: a python-based backend that runs onnxruntime, so standard
                           `platform: "onnxruntime_onnx"` models load here unchanged.

Path lookups are small module functions so that tests (and odd installs) can replace them.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import sysconfig
import tempfile
from pathlib import Path
from typing import Mapping

PYTHON_BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")
STUB_NAME = "triton_python_backend_stub"
ONNX_BACKEND_SOURCE = Path(__file__).parent / "onnxruntime_backend" / "model.py"


class TritonError(RuntimeError):
    """Base class of the errors of `djserve.triton`."""


class TritonSetupError(TritonError):
    """Something Triton needs is missing; the message names it."""


def python_tag() -> str:
    """`3.11` for the running interpreter: selects the python-backend stub."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def pytriton_dir() -> Path:
    """Directory of the installed `pytriton` package (not imported: its import is slow)."""
    spec = importlib.util.find_spec("pytriton")
    if spec is None or not spec.submodule_search_locations:
        raise TritonSetupError(
            "the `nvidia-pytriton` package is not installed in this Python "
            f"({sys.executable}); it provides the tritonserver binary: pip install nvidia-pytriton==0.7.0"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def tritonserver_binary() -> Path:
    return pytriton_dir() / "tritonserver" / "bin" / "tritonserver"


def python_backend_dir() -> Path:
    """The wheel's python backend: `libtriton_python.so` and `triton_python_backend_utils.py`."""
    return pytriton_dir() / "tritonserver" / "backends" / "python"


def python_stub(tag: str | None = None) -> Path:
    return pytriton_dir() / "tritonserver" / "python_backend_stubs" / (tag or python_tag()) / STUB_NAME


def embedded_cache_dir() -> Path:
    """The wheel's response cache implementations (`local/libtritoncache_local.so`)."""
    return pytriton_dir() / "tritonserver" / "caches"


def triton_libs_dir() -> Path:
    """`site-packages/nvidia_pytriton.libs`: libtritonserver, libcudart and friends."""
    return pytriton_dir().parent / "nvidia_pytriton.libs"


def check_installation() -> Path:
    """Return the tritonserver binary; raise TritonSetupError naming every missing piece."""
    binary = tritonserver_binary()
    missing = []
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        missing.append(f"the tritonserver binary ({binary})")
    stub = python_stub()
    if not stub.is_file():
        have = sorted(p.name for p in stub.parent.parent.glob("*") if (p / STUB_NAME).is_file())
        missing.append(
            f"the python backend stub for Python {python_tag()} ({stub}; stubs exist for: "
            f"{', '.join(have) or 'none'})"
        )
    for name in PYTHON_BACKEND_FILES:
        path = python_backend_dir() / name
        if not path.is_file():
            missing.append(f"the python backend {'lib' if name.endswith('.so') else 'file'} {name} ({path})")
    if not triton_libs_dir().is_dir():
        missing.append(f"the Triton shared libraries ({triton_libs_dir()})")
    if missing:
        raise TritonSetupError(
            "cannot run Triton, missing: " + "; ".join(missing)
            + ". Reinstall nvidia-pytriton==0.7.0 in this Python."
        )
    return binary


def _backend_sources() -> dict[str, Path]:
    """Relative path inside the backend directory -> source file."""
    sources = {f"python/{name}": python_backend_dir() / name for name in PYTHON_BACKEND_FILES}
    sources[f"python/{STUB_NAME}"] = python_stub()
    sources["onnxruntime/model.py"] = ONNX_BACKEND_SOURCE
    return sources


def assemble_backends(target_dir: Path | str) -> Path:
    """Build (or refresh) a Triton backend directory at `target_dir` and return it.

    Idempotent and cheap when up to date: a file is copied only when its size or mtime differs
    from the source. Copies go to a temporary file renamed into place, so a server already running
    from this directory (an executing stub) is never overwritten in place.
    """
    check_installation()
    if not ONNX_BACKEND_SOURCE.is_file():
        raise TritonSetupError(f"missing the onnxruntime backend source {ONNX_BACKEND_SOURCE}")
    target = Path(target_dir)
    for rel, src in _backend_sources().items():
        dst = target / rel
        if _up_to_date(src, dst):
            continue
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", dir=dst.parent)
        os.close(fd)
        try:
            shutil.copy2(src, tmp)  # copy2 keeps mtime: the next call sees it up to date
            if rel.endswith(STUB_NAME):
                os.chmod(tmp, 0o755)
            os.replace(tmp, dst)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return target


def missing_backend_files(backend_dir: Path | str) -> list[Path]:
    """Files `assemble_backends` would create that are absent from `backend_dir`."""
    return [Path(backend_dir) / rel for rel in _backend_sources() if not (Path(backend_dir) / rel).is_file()]


def _up_to_date(src: Path, dst: Path) -> bool:
    try:
        s, d = src.stat(), dst.stat()
    except FileNotFoundError:
        return False
    return s.st_size == d.st_size and s.st_mtime_ns == d.st_mtime_ns


def server_environment(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment `tritonserver` and its python stubs need.

    - LD_LIBRARY_PATH: the wheel's `nvidia_pytriton.libs` (the stub loads libcudart from there) and
      the running Python's LIBDIR (else the stub may pick the system's libpython of another patch
      release and fail at import time).
    - PATH starting with this interpreter's bin/: the stub finds its Python prefix, and so the
      site-packages with numpy/onnxruntime, through `python3` on PATH.
    """
    env = dict(os.environ if base is None else base)
    libs = [str(triton_libs_dir())]
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir:
        libs.append(libdir)
    if env.get("LD_LIBRARY_PATH"):
        libs.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = os.pathsep.join(p for p in (bindir, env.get("PATH", "")) if p)
    return env
