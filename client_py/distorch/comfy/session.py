"""The ComfyUI process's one connection to distorchd.

Connecting is lazy and never fatal: when the daemon is not there, ComfyUI
starts anyway, the loader nodes fall back to ComfyUI's stock loading, and one
warning says how to start the daemon. A later node run tries again, so a
daemon started after ComfyUI is picked up without a restart.

Thread-safe: one lock guards the client slot.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable, List, Optional

logger = logging.getLogger(__name__)

START_HINT = (
    "start it with `distorchd` (or `systemctl start distorchd`), or point "
    "$DISTORCH_SOCKET at a running one; docs/comfyui.md has the steps")

_lock = threading.Lock()
_client = None
_warned = False
_factory: Optional[Callable[[], object]] = None
_on_connect: List[Callable[[object], None]] = []


def set_client_factory(factory: Optional[Callable[[], object]]) -> None:
    """Tests swap the real Client for a stub here; None restores the default."""
    global _factory, _client, _warned
    with _lock:
        _factory = factory
        _client = None
        _warned = False


def on_connect(callback: Callable[[object], None]) -> None:
    """Runs `callback(client)` each time a new connection is made."""
    _on_connect.append(callback)


def _default_factory():
    from .. import Client  # the client library (relative: works under ComfyUI's module name)
    socket_path = os.environ.get("DISTORCH_SOCKET") or None
    if not Client.is_available(socket_path):
        return None
    return Client(socket_path=socket_path, client_name="ComfyUI")


def client(warn: bool = True):
    """The connected client, or None (after one warning) when the daemon is
    not reachable."""
    global _client, _warned
    with _lock:
        if _client is not None:
            return _client
        factory = _factory or _default_factory
        try:
            made = factory()
        except Exception as e:  # any failure to connect means stock loading
            logger.debug("distorch: connecting to distorchd failed: %r", e)
            made = None
        if made is None:
            if warn and not _warned:
                _warned = True
                logger.warning("distorch: distorchd is not running; the distorch loader "
                               "nodes load models the stock ComfyUI way until it is. To "
                               "share weights between ComfyUI instances, %s.", START_HINT)
            return None
        _client = made
        callbacks = list(_on_connect)
    for callback in callbacks:
        callback(made)
    return made


def drop(reason: str) -> None:
    """Forgets a broken connection; the next client() call reconnects."""
    global _client
    with _lock:
        if _client is not None:
            logger.warning("distorch: lost the connection to distorchd (%s)", reason)
            try:
                _client.close()
            except Exception:
                pass
        _client = None


def current():
    """The client if connected, without trying to connect."""
    with _lock:
        return _client
