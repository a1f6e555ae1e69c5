"""`djserve bench`: how close the stack comes to the hardware's limit and how far ahead of a naive
service it is, all measured in one run on the same machine (ratios, never absolute thresholds)."""
