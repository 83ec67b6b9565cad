"""The ComfyUI side's own settings: which socket, and whether and how to start
a daemon when none answers.

Read once per process from a small TOML file, `$DISTORCH_CONFIG`, else
`$XDG_CONFIG_HOME/distorch/comfyui.toml` (`~/.config/distorch/comfyui.toml`);
a missing file means the defaults. Environment variables win over the file:

  socket = "/path/distorchd.sock"   DISTORCH_SOCKET       default: the client's default socket
  [autostart]
  enabled = true                    DISTORCH_AUTOSTART=0  start a per-user distorchd when none answers
  binary = "distorchd"              DISTORCH_DAEMON_BIN   a path, or a name on PATH
  idle_exit_s = 600                 DISTORCH_IDLE_EXIT_S  the started daemon's --idle-exit-s (0: never)
  args = ["--devices", "..."]       DISTORCH_DAEMON_ARGS  more daemon flags (shell words)
  wait_s = 20                                             how long its socket may take to answer
  log = ""                                                default: distorchd.log next to the socket

A key the file does not know, or a value of the wrong type, is logged once
(naming the key and the file) and the default is used.
"""

from __future__ import annotations

import logging
import os
import shlex
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Dict, Optional

from ..spawn import SpawnSettings

logger = logging.getLogger(__name__)

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
_AUTOSTART_KEYS = {"enabled": bool, "binary": str, "idle_exit_s": (int, float), "args": list,
                   "wait_s": (int, float), "log": str}


@dataclass(frozen=True)
class Settings:
    socket: str = ""                  # "" = the client's default (default_socket_path)
    autostart: bool = True
    spawn: SpawnSettings = field(default_factory=SpawnSettings)
    source: str = "defaults"          # where they came from, for messages


def config_path() -> str:
    explicit = os.environ.get("DISTORCH_CONFIG")
    if explicit:
        return explicit
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "distorch", "comfyui.toml")


def _read_toml(path: str) -> Dict[str, Any]:
    try:
        import tomllib  # Python 3.11+
    except ImportError:
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            logger.warning("distorch: cannot read %s: this Python (< 3.11) needs `pip install "
                           "tomli` to read TOML; using the defaults", path)
            return {}
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        logger.warning("distorch: cannot read %s (%s); using the defaults", path, e)
        return {}


def _from_file(doc: Dict[str, Any], path: str, settings: Settings) -> Settings:
    spawn = settings.spawn
    for key, value in doc.items():
        if key == "socket" and isinstance(value, str):
            settings = replace(settings, socket=value)
        elif key == "autostart" and isinstance(value, dict):
            for k, v in value.items():
                want = _AUTOSTART_KEYS.get(k)
                if want is None or not isinstance(v, want) or (want is not bool and isinstance(v, bool)):
                    logger.warning("distorch: %s: [autostart] %s = %r is not a known setting of "
                                   "the right type (known: %s); ignored", path, k, v,
                                   ", ".join(sorted(_AUTOSTART_KEYS)))
                elif k == "enabled":
                    settings = replace(settings, autostart=v)
                elif k == "binary":
                    spawn = replace(spawn, binary=v)
                elif k == "idle_exit_s":
                    spawn = replace(spawn, idle_exit_s=float(v))
                elif k == "args":
                    spawn = replace(spawn, args=tuple(str(a) for a in v))
                elif k == "wait_s":
                    spawn = replace(spawn, wait_s=float(v))
                elif k == "log":
                    spawn = replace(spawn, log_path=v)
        else:
            logger.warning("distorch: %s: %s = %r is not a known setting (known: socket, "
                           "[autostart]); ignored", path, key, value)
    return replace(settings, spawn=spawn)


def _from_env(settings: Settings) -> Settings:
    env = os.environ
    spawn = settings.spawn
    if env.get("DISTORCH_SOCKET"):
        settings = replace(settings, socket=env["DISTORCH_SOCKET"])
    flag = env.get("DISTORCH_AUTOSTART", "").strip().lower()
    if flag in _TRUE or flag in _FALSE:
        settings = replace(settings, autostart=flag in _TRUE)
    elif flag:
        logger.warning("distorch: DISTORCH_AUTOSTART=%r is not one of %s; ignored", flag,
                       "/".join(_TRUE + _FALSE))
    if env.get("DISTORCH_DAEMON_BIN"):
        spawn = replace(spawn, binary=env["DISTORCH_DAEMON_BIN"])
    if env.get("DISTORCH_IDLE_EXIT_S"):
        try:
            spawn = replace(spawn, idle_exit_s=float(env["DISTORCH_IDLE_EXIT_S"]))
        except ValueError:
            logger.warning("distorch: DISTORCH_IDLE_EXIT_S=%r is not a number; ignored",
                           env["DISTORCH_IDLE_EXIT_S"])
    if env.get("DISTORCH_DAEMON_ARGS"):
        spawn = replace(spawn, args=tuple(shlex.split(env["DISTORCH_DAEMON_ARGS"])))
    return replace(settings, spawn=spawn)


_lock = threading.Lock()
_cached: Optional[Settings] = None


def load() -> Settings:
    """This process's settings (read on first use)."""
    global _cached
    with _lock:
        if _cached is None:
            path = config_path()
            doc = _read_toml(path)
            settings = _from_file(doc, path, Settings(source=path if doc else "defaults"))
            _cached = _from_env(settings)
        return _cached


def reset() -> None:
    """Tests: read the file and environment again on the next load()."""
    global _cached
    with _lock:
        _cached = None
