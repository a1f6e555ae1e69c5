"""What the platform's backend imports: the gateway client (HTTP) and the Triton client (gRPC/HTTP)."""

from clients.gateway import (
    AsyncGatewayClient,
    GatewayClient,
    GatewayConnectionError,
    GatewayError,
    InvalidRequest,
    ServiceUnavailable,
)
from clients.triton import AsyncTritonModelClient, TritonModelClient

__all__ = [
    "AsyncGatewayClient",
    "AsyncTritonModelClient",
    "GatewayClient",
    "GatewayConnectionError",
    "GatewayError",
    "InvalidRequest",
    "ServiceUnavailable",
    "TritonModelClient",
]
