"""The embedded Triton Inference Server: backend assembly and a managed `tritonserver` process."""

from djserve.triton.backends import (
    TritonError,
    TritonSetupError,
    assemble_backends,
    check_installation,
    server_environment,
    tritonserver_binary,
)
from djserve.triton.server import TritonServer, TritonSettings, TritonStartError

__all__ = [
    "TritonError",
    "TritonServer",
    "TritonSettings",
    "TritonSetupError",
    "TritonStartError",
    "assemble_backends",
    "check_installation",
    "server_environment",
    "tritonserver_binary",
]
