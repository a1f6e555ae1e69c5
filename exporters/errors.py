"""Errors an export reports as one clear line (the CLI prints the message and exits non-zero)."""


class ExportError(Exception):
    """An export that must not write anything."""


class CheckpointError(ExportError):
    """The checkpoint is missing, unreadable, or not this model's architecture or shapes."""


class ParityError(ExportError):
    """ONNX Runtime does not reproduce the source framework's outputs within the tolerance."""


def one_line(error: object, limit: int = 300) -> str:
    """An exception's text folded to one line, for messages that must stay one line."""
    text = " ".join(str(error).split())
    return text[:limit] + ("..." if len(text) > limit else "")
