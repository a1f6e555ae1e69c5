"""DJ UNIVERSE model serving: model contracts, the embedded Triton and the `djserve` CLI."""

__version__ = "0.1.0"
