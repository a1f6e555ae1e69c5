"""Audio made in the tests: the load tests' click tracks and encoders (one implementation)."""

from loadtest.samples import FORMATS, click_track, encode

__all__ = ["FORMATS", "click_track", "encode"]
