"""One module per model family, each following `training.base`."""
