"""Errors raised by the distorch client.

Every failure the daemon reports arrives as a DistorchError carrying the gRPC
status code name ("INVALID_ARGUMENT", "RESOURCE_EXHAUSTED", ...) and the
daemon's message, which names what was wrong and how to fix it.
"""

from __future__ import annotations

from typing import Optional


class DistorchError(Exception):
    """A request to distorchd failed. `code` is the gRPC status code name,
    `message` the daemon's (or the client's) explanation."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class DaemonUnavailable(DistorchError):
    """distorchd is not running, or its socket does not answer."""

    def __init__(self, message: str) -> None:
        super().__init__("UNAVAILABLE", message)


class AdoptionError(DistorchError):
    """The daemon loaded the model but this process cannot view its memory as
    tensors (a dtype this torch lacks, no CUDA for a GPU arena, ...)."""

    def __init__(self, message: str) -> None:
        super().__init__("FAILED_PRECONDITION", message)


def from_rpc_error(error: Exception, what: str = "") -> DistorchError:
    """Converts a grpc.RpcError (or anything else) into a DistorchError."""
    code_fn = getattr(error, "code", None)
    details_fn = getattr(error, "details", None)
    code = code_fn() if callable(code_fn) else None
    details: Optional[str] = details_fn() if callable(details_fn) else None
    name = getattr(code, "name", None) or "UNKNOWN"
    message = details or str(error) or name
    if what:
        message = f"{what}: {message}"
    if name == "UNAVAILABLE":
        return DaemonUnavailable(message)
    return DistorchError(name, message)
