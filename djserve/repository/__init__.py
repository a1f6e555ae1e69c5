"""The Triton model repository: layout, numbered versions and config.pbtxt rendering."""

from djserve.repository.config import render_config
from djserve.repository.layout import ModelRepository, VersionMetadata

__all__ = ["ModelRepository", "VersionMetadata", "render_config"]
