"""What the platform's backend imports to call inference (Triton directly; the gateway later)."""

from clients.triton import TritonModelClient

__all__ = ["TritonModelClient"]
