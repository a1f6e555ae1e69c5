"""Every refusal is a `GatewayError`: an HTTP status, a machine-readable code and a message.

The service turns them into `ErrorBody` JSON; nothing the client sends can produce a 500.
"""

from __future__ import annotations


class GatewayError(Exception):
    status = 400

    def __init__(
        self, code: str, message: str, field: str | None = None, status: int | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.code, self.message, self.field = code, message, field
        self.headers = headers
        """extra response headers (e.g. WWW-Authenticate on a 401)"""
        if status is not None:
            self.status = status


class InvalidInput(GatewayError):
    status = 422


class TritonUnavailable(GatewayError):
    """Triton down, slow past the timeout, or the routed model version not ready: retry later."""

    status = 503

    def __init__(self, message: str):
        super().__init__("triton_unavailable", message)
