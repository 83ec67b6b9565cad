"""Starting a per-user distorchd on demand, watchman-style.

When no daemon answers on the socket a client would use, `ensure_daemon`
starts one for this user on that socket and waits until it answers:

  - one daemon per socket even when several processes try at once: the start
    runs under an exclusive flock on `<socket>.lock`; whoever gets the lock
    second finds the socket answering and uses it;
  - the binary is `settings.binary` (a path, or a name looked up on PATH),
    `distorchd` from PATH by default;
  - detached: a new session (no terminal, no signals for ComfyUI's process
    group), stdin from /dev/null, stdout and stderr appended to `<socket
    dir>/distorchd.log`; it outlives the process that started it;
  - `--idle-exit-s N`: it exits after N s with no sessions and no pinned
    models, so a daemon nobody uses does not stay (left out, with a warning,
    when the binary predates the flag).

Thread-safe (the lock is a file lock; nothing here keeps state but the reaper
threads of daemons this process started).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import socket
import stat
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

logger = logging.getLogger(__name__)

IDLE_EXIT_FLAG = "--idle-exit-s"


class SpawnError(Exception):
    """No daemon could be started; the message says why and what to do."""


@dataclass(frozen=True)
class SpawnSettings:
    """How a daemon is started (distorch.comfy.settings reads them)."""
    binary: str = "distorchd"       # a path, or a name looked up on PATH
    idle_exit_s: float = 600.0      # 0: never exit when idle
    args: Tuple[str, ...] = ()      # more daemon flags, e.g. ("--devices", "sim:0=8GiB")
    wait_s: float = 20.0            # how long the socket may take to answer
    log_path: str = ""              # default: distorchd.log next to the socket


@dataclass(frozen=True)
class Spawned:
    """A daemon this call started."""
    pid: int
    socket_path: str
    binary: str
    log_path: str
    command: List[str] = field(default_factory=list)


def answers(socket_path: str) -> bool:
    """True when something accepts connections on the unix socket (a cheap
    probe: no gRPC, no session)."""
    try:
        if not stat.S_ISSOCK(os.stat(socket_path).st_mode):
            return False
    except OSError:
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        try:
            probe.connect(socket_path)
            return True
        except OSError:
            return False


def resolve_binary(binary: str) -> str:
    """The executable `binary` names (a path, or a name on PATH)."""
    if os.sep in binary:
        if os.path.isfile(binary) and os.access(binary, os.X_OK):
            return os.path.abspath(binary)
        raise SpawnError(f"the configured distorchd binary {binary} is not an executable file")
    found = shutil.which(binary)
    if found is None:
        raise SpawnError(f"no `{binary}` on PATH: install distorch (docs/operations.md), or set "
                         f"DISTORCH_DAEMON_BIN (or `binary` under [autostart] in the distorch "
                         f"config) to the distorchd binary")
    return found


def default_log_path(socket_path: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(socket_path)), "distorchd.log")


def _supports_idle_exit(binary: str) -> bool:
    try:
        out = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return False
    return IDLE_EXIT_FLAG in out.stdout + out.stderr


def _command(binary: str, socket_path: str, settings: SpawnSettings) -> List[str]:
    command = [binary, "--socket", socket_path]
    if settings.idle_exit_s > 0:
        if _supports_idle_exit(binary):
            command += [IDLE_EXIT_FLAG, f"{settings.idle_exit_s:g}"]
        else:
            logger.warning("distorch: %s has no %s flag (an older build): the daemon started "
                           "now keeps running until stopped", binary, IDLE_EXIT_FLAG)
    return command + list(settings.args)


class _FileLock:
    """An exclusive flock on `path`, waited for up to `timeout` s."""

    def __init__(self, path: str, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.fd = -1

    def __enter__(self) -> "_FileLock":
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except OSError as e:
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    os.close(self.fd)
                    raise
            if time.monotonic() > deadline:
                os.close(self.fd)
                raise SpawnError(f"another process has held {self.path} for {self.timeout:g} s "
                                 f"while starting distorchd; see its log")
            time.sleep(0.05)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.fd, fcntl.LOCK_UN)
        os.close(self.fd)


def _log_tail(path: str, limit: int = 1500) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode(errors="replace").strip()
    except OSError:
        return ""


def _start(command: List[str], log_path: str) -> subprocess.Popen:
    with open(log_path, "ab") as log:
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} started by pid {os.getpid()}: "
                  f"{' '.join(command)}\n".encode())
        log.flush()
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                cwd="/", close_fds=True, start_new_session=True)
    # Reap it if it exits while this process lives (no zombie); it outlives us otherwise.
    threading.Thread(target=proc.wait, name="distorchd-reaper", daemon=True).start()
    return proc


def _wait_for_socket(proc: subprocess.Popen, socket_path: str, log_path: str,
                     wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while not answers(socket_path):
        if proc.poll() is not None:
            raise SpawnError(f"distorchd exited with status {proc.returncode} right after "
                             f"starting; its log ({log_path}) ends with:\n{_log_tail(log_path)}")
        if time.monotonic() > deadline:
            raise SpawnError(f"distorchd (pid {proc.pid}) started but did not answer on "
                             f"{socket_path} within {wait_s:g} s; see {log_path}")
        time.sleep(0.05)


def ensure_daemon(socket_path: str, settings: SpawnSettings) -> Optional[Spawned]:
    """Makes sure a daemon answers on socket_path: returns None when one
    already does (or another process started it meanwhile), the Spawned
    daemon when this call started it; raises SpawnError when none could be
    started."""
    if answers(socket_path):
        return None
    binary = resolve_binary(settings.binary)
    directory = os.path.dirname(os.path.abspath(socket_path))
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as e:
        raise SpawnError(f"cannot create the socket directory {directory}: {e.strerror}") from None
    log_path = settings.log_path or default_log_path(socket_path)
    with _FileLock(socket_path + ".lock", settings.wait_s + 10):
        if answers(socket_path):
            return None  # another process started it while we waited for the lock
        command = _command(binary, socket_path, settings)
        proc = _start(command, log_path)
        _wait_for_socket(proc, socket_path, log_path, settings.wait_s)
    return Spawned(proc.pid, socket_path, binary, log_path, command)
