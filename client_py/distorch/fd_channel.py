"""The fd channel: a unix socket beside distorchd's gRPC socket that moves
file descriptors (SCM_RIGHTS), which gRPC cannot. One short exchange per
connection, text lines (daemon/fd_channel.h, docs/protocol.md):

    client: "PUT\\n" + 1 fd        daemon: "OK <ticket>\\n"
    client: "GET <ticket>\\n"      daemon: "OK <n>\\n" + n fds
    on error                      daemon: "ERR <message>\\n"
"""

from __future__ import annotations

import array
import os
import socket
from typing import List, Tuple

from .errors import DaemonUnavailable, DistorchError

# Mirrors daemon/scm_rights.h: at most 64 fds per message, lines of 512 bytes.
MAX_FDS_PER_MESSAGE = 64
MAX_LINE = 512


def _connect(path: str, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        raise DaemonUnavailable(f"cannot reach distorchd's fd channel at {path}: {e}") from e
    return sock


def _close_all(fds: List[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _receive_line(sock: socket.socket) -> Tuple[str, List[int]]:
    """One '\\n'-terminated line and every fd that came with it. The caller
    owns the fds (they are closed here if the line is malformed)."""
    data = b""
    fds: List[int] = []
    ancillary = socket.CMSG_SPACE(MAX_FDS_PER_MESSAGE * array.array("i").itemsize)
    try:
        while b"\n" not in data:
            if len(data) >= MAX_LINE:
                raise DistorchError("INTERNAL", "fd channel: reply line too long")
            chunk, ancdata, flags, _ = sock.recvmsg(MAX_LINE - len(data), ancillary)
            for level, kind, payload in ancdata:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    got = array.array("i")
                    got.frombytes(payload[: len(payload) - len(payload) % got.itemsize])
                    for fd in got:
                        os.set_inheritable(fd, False)
                        fds.append(fd)
            if flags & getattr(socket, "MSG_CTRUNC", 0x8):
                raise DistorchError("INTERNAL", "fd channel: too many fds attached")
            if not chunk:
                raise DaemonUnavailable("fd channel closed before a full reply line")
            data += chunk
    except socket.timeout as e:
        _close_all(fds)
        raise DaemonUnavailable("fd channel: distorchd did not answer in time") from e
    except BaseException:
        _close_all(fds)
        raise
    return data.split(b"\n", 1)[0].decode("utf-8", "replace"), fds


def put_fd(channel_path: str, fd: int, timeout: float = 10.0) -> str:
    """Sends an open fd (the model file) and returns the one-time ticket that
    names it in a LoadRequest. `fd` stays open in this process."""
    with _connect(channel_path, timeout) as sock:
        sock.sendmsg([b"PUT\n"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
        line, extra = _receive_line(sock)
        _close_all(extra)
    if not line.startswith("OK "):
        raise DistorchError("UNAVAILABLE" if not line.startswith("ERR ") else "INVALID_ARGUMENT",
                            f"fd channel PUT failed: {line[4:] if line.startswith('ERR ') else line}")
    return line[3:].strip()


def get_fds(channel_path: str, ticket: str, timeout: float = 10.0) -> List[int]:
    """Redeems an arena ticket (LoadResult.arena_ticket): returns the
    HOST_MEMFD arenas' fds in arena order. The caller owns (must close) them."""
    with _connect(channel_path, timeout) as sock:
        sock.sendall(f"GET {ticket}\n".encode("ascii"))
        line, fds = _receive_line(sock)
    if line.startswith("OK "):
        try:
            count = int(line[3:])
        except ValueError:
            count = -1
        if count == len(fds):
            return fds
        _close_all(fds)
        raise DistorchError("INTERNAL", f"fd channel GET: reply '{line}' came with {len(fds)} fds")
    _close_all(fds)
    if line.startswith("ERR "):
        raise DistorchError("NOT_FOUND", f"fd channel GET failed: {line[4:]}")
    raise DistorchError("INTERNAL", f"fd channel GET: unexpected reply '{line}'")
