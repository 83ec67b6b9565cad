"""The ComfyUI process's one connection to distorchd.

Connecting is lazy. When no daemon answers on the socket (settings.py:
DISTORCH_SOCKET, the config's `socket`, else the client's per-user default),
this process starts one for the user (spawn.py: a lock file makes concurrent
ComfyUI instances start exactly one; it outlives ComfyUI and exits when idle),
unless auto-start is off. When no daemon can be reached or started, ComfyUI
still starts: one warning says why, nodes that ask for an allocation fail with
`unavailable_error` (never a stock load that ignores the allocation), nodes
without one load the stock way. Every client() call tries again (a failed
start is retried after RETRY_SPAWN_S), so a daemon that appears later is
picked up without a restart; `connection_identity` is part of the loader
nodes' change check, so the next prompt re-runs them through it.

Thread-safe: one lock guards the client slot.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import weakref
from typing import Callable, List, Optional

from . import settings as settings_mod

logger = logging.getLogger(__name__)

START_HINT = (
    "start it with `distorchd --socket {socket}` (or `systemctl start distorchd` and "
    "DISTORCH_SOCKET=/run/distorch/distorchd.sock), or let ComfyUI start it: put distorchd on "
    "PATH or set DISTORCH_DAEMON_BIN, and leave DISTORCH_AUTOSTART unset; docs/comfyui.md has "
    "the steps")
# A failed start is not retried sooner (every INPUT_TYPES and change check asks).
RETRY_SPAWN_S = 30.0

_lock = threading.Lock()
_client = None
_warned = False
_factory: Optional[Callable[[], object]] = None
_on_connect: List[Callable[[object], None]] = []
_unavailable = ""             # why the last attempt found no daemon
_spawn_failed_at = 0.0
_client_serial = 0            # bumped for each new client object
_stream_serials: "weakref.WeakKeyDictionary[object, int]" = weakref.WeakKeyDictionary()
_serials = itertools.count(1)


class BrokerUnavailable(RuntimeError):
    """A node asked for an allocation and no daemon could be reached or started."""


def set_client_factory(factory: Optional[Callable[[], object]]) -> None:
    """Tests swap the real Client for a stub here; None restores the default."""
    global _factory, _client, _warned, _unavailable, _spawn_failed_at
    with _lock:
        _factory = factory
        _client = None
        _warned = False
        _unavailable = ""
        _spawn_failed_at = 0.0
    settings_mod.reset()


def on_connect(callback: Callable[[object], None]) -> Callable[[], None]:
    """Runs `callback(client)` each time a new connection is made; once, however
    often it is registered. Returns the undo (it unregisters the callback)."""
    with _lock:
        if callback not in _on_connect:
            _on_connect.append(callback)

    def undo() -> None:
        with _lock:
            if callback in _on_connect:
                _on_connect.remove(callback)
    return undo


def socket_path() -> str:
    """The socket this process uses."""
    configured = settings_mod.load().socket
    if configured:
        return configured
    from ..client import default_socket_path
    return default_socket_path()


def _default_factory():
    global _unavailable, _spawn_failed_at
    from .. import spawn
    from ..client import Client  # relative: works under ComfyUI's module name
    path = socket_path()
    config = settings_mod.load()
    if not spawn.answers(path):
        if not config.autostart:
            _unavailable = (f"no distorchd answers at {path} and auto-start is off "
                            f"(DISTORCH_AUTOSTART=0, or [autostart] enabled = false in "
                            f"{settings_mod.config_path()})")
            return None
        if time.monotonic() - _spawn_failed_at < RETRY_SPAWN_S and _spawn_failed_at:
            return None  # _unavailable still says why
        try:
            started = spawn.ensure_daemon(path, config.spawn)
        except spawn.SpawnError as e:
            _spawn_failed_at = time.monotonic()
            _unavailable = f"no distorchd answers at {path}, and starting one failed: {e}"
            return None
        if started is not None:
            idle = (f"exits after {config.spawn.idle_exit_s:g} s with no sessions and no "
                    f"pinned models" if config.spawn.idle_exit_s > 0 else "never exits by itself")
            logger.info("distorch: started distorchd %s (pid %d) for this user at %s; it "
                        "outlives ComfyUI and %s; log: %s", started.binary, started.pid, path,
                        idle, started.log_path)
    _spawn_failed_at = 0.0
    return Client(socket_path=path, client_name="ComfyUI")


def client(warn: bool = True):
    """The connected client, or None (after one warning) when no daemon can be
    reached or started."""
    global _client, _warned, _unavailable, _client_serial
    with _lock:
        if _client is not None:
            return _client
        factory = _factory or _default_factory
        try:
            made = factory()
        except Exception as e:  # the daemon went away between the probe and the connect
            logger.debug("distorch: connecting to distorchd failed: %r", e)
            _unavailable = f"connecting to distorchd at {socket_path()} failed: {e}"
            made = None
        if made is None:
            if not _unavailable:
                _unavailable = f"no distorchd answers at {socket_path()}"
            if warn and not _warned:
                _warned = True
                logger.warning("distorch: distorchd is not running (%s). distorch nodes that "
                               "ask for an allocation fail until a daemon runs; the others load "
                               "the stock ComfyUI way (not shared). To use the broker, %s.",
                               _unavailable,
                               START_HINT.format(socket=socket_path()))
            return None
        _client = made
        _unavailable = ""
        _warned = False  # a later loss warns again
        _client_serial = next(_serials)
        callbacks = list(_on_connect)
    for callback in callbacks:
        callback(made)
    return made


def unavailable_reason() -> str:
    """Why the last attempt found no daemon ("" when connected)."""
    with _lock:
        return _unavailable or f"no distorchd answers at {socket_path()}"


def unavailable_error(node_type: str, allocation: str) -> BrokerUnavailable:
    """The error a node raises when it asks for an allocation and no daemon
    can be reached or started."""
    return BrokerUnavailable(
        f"distorch: {node_type} asks for the allocation '{allocation}', which needs distorchd, "
        f"but {unavailable_reason()}. It is not loaded the stock way, which would ignore the "
        f"allocation. To fix: {START_HINT.format(socket=socket_path())}.")


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


def _stream_serial(c) -> int:
    """A number for the client's current session stream: a new one after the
    client reconnected (a restarted daemon reuses session ids)."""
    stream = getattr(c, "_session", None)
    if stream is None:
        return 0
    try:
        serial = _stream_serials.get(stream)
        if serial is None:
            serial = _stream_serials[stream] = next(_serials)
        return serial
    except TypeError:  # not weak-referenceable
        return id(stream)


def connection_identity() -> str:
    """Which broker connection a node run would use: "none", or the client and
    session stream plus the daemon's session id. Connects (or starts a daemon)
    when there is none, and reconnects when the daemon restarted, so the value
    changes exactly when the next load would go somewhere else."""
    c = client(warn=False)
    if c is None:
        return "none"
    if not hasattr(type(c), "session_id"):
        return f"{_client_serial}.0"  # a stand-in client without sessions (tests)
    try:
        session_id = c.session_id  # the real client reconnects here after a restart
    except Exception as e:
        drop(str(e))
        c = client(warn=False)
        if c is None:
            return "none"
        try:
            session_id = c.session_id
        except Exception:
            return "none"
    return f"{_client_serial}.{_stream_serial(c)}.{session_id}"
