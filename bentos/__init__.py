"""The BentoML gateway: HTTP API in front of Triton."""
