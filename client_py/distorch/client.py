"""The distorch client: one connection (and one session) to distorchd.

    from distorch import Client
    c = Client()                              # $DISTORCH_SOCKET or the default socket
    m = c.load("/models/flux.safetensors", allocation="cuda:0,12gb;cpu,*",
               keep_loaded=True)
    m.tensors["img_in.weight"]                # a view of broker memory, no copy
    c.free()                                  # ComfyUI's /free: drops non-kept leases

Thread-safe: calls may come from several threads (ComfyUI's executor and its
server thread). A background thread reads the session stream; eviction
callbacks run on it. When the stream breaks (the daemon restarted), the next
call reconnects with a new session; models held by the old session are marked
`lost` (their tensors stay mapped and usable) and listed in `lost_models`.
"""

from __future__ import annotations

import errno
import logging
import os
import queue
import threading
import weakref
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Union

import grpc

from . import fd_channel, spawn
from . import types as t
from .errors import DaemonUnavailable, DistorchError, from_rpc_error
from .model_header import tensor_metas
from .v1 import broker_pb2 as pb
from .v1 import broker_pb2_grpc as pb_grpc

logger = logging.getLogger(__name__)

# Unary calls answer in milliseconds; this only bounds a wedged daemon.
RPC_TIMEOUT_S = 30.0
# Load replies list every tensor of a model (thousands); the daemon allows 256 MiB.
_CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 256 << 20),
                    ("grpc.max_send_message_length", 256 << 20)]


def default_socket_path() -> str:
    """$DISTORCH_SOCKET, else the daemon's default (daemon/config.cc
    DefaultSocketPath): /run/distorch/distorchd.sock for root, else
    $XDG_RUNTIME_DIR/distorch/distorchd.sock, else /tmp/distorch-$UID/distorchd.sock."""
    env = os.environ.get("DISTORCH_SOCKET")
    if env:
        return env
    if os.geteuid() == 0:
        return "/run/distorch/distorchd.sock"
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return os.path.join(xdg, "distorch", "distorchd.sock")
    return f"/tmp/distorch-{os.geteuid()}/distorchd.sock"


# ------------------------------------------------------------------ loaded model


class LoadedModel:
    """One lease on a resident model, and its tensors mapped into this process.

    Attributes: model_id, lease_id, shared (attached to a residency another
    load made), name, path, keep_loaded, placement (dict: total_bytes,
    compute_device, allocation, devices, blocks, notes), tensors (name ->
    torch.Tensor, file order), tensor_devices (name -> broker device: "sim:0",
    "cpu", "cuda:1"), blocks (name -> block), tensor_dtypes (name -> daemon
    dtype: "BF16", "Q4_0"; GGML quantised tensors are flat uint8), lost (the
    daemon restarted or evicted it: no longer leased, still mapped), released,
    residency_allocation and residency_compute_device (what the residency was
    placed for, canonical) and requested_allocation and
    requested_compute_device (what this load asked for, in the same form: they
    differ when it attached to a residency another load placed),
    tensor_prefixes (the part of the file this residency holds; () = all).

    Tensors must not be used after close(): close() unmaps the arenas at once
    when nothing else holds their tensors; tensors still referenced elsewhere
    keep their arena mapped until they go (never a dangling pointer), but the
    daemon no longer accounts that memory to anyone.
    """

    def __init__(self, client: "Client", path: str, name: str, session: "_Session",
                 keep_loaded: bool, result: Any, adopted: Any) -> None:
        self._client = client
        self._session = session  # identity, not id: a restarted daemon reuses ids
        self.path = path
        self.name = name
        self.session_id = session.session_id
        self.keep_loaded = keep_loaded
        self.model_id = int(result.model_id)
        self.lease_id = int(result.lease_id)
        self.shared = bool(result.shared)
        self.placement = t.placement_dict(result.placement)
        self.residency_allocation = result.residency_allocation
        self.residency_compute_device = result.residency_compute_device
        self.requested_allocation = result.requested_allocation
        self.requested_compute_device = result.requested_compute_device
        self.tensor_prefixes = tuple(result.tensor_prefixes)  # the part; () = whole file
        arenas = list(result.arenas)
        self.arena_devices = [a.device for a in arenas]
        self.tensors: Dict[str, Any] = adopted.tensors
        self.tensor_devices = {n: arenas[s.arena].device for n, s in adopted.slots.items()}
        self.blocks = {n: s.block for n, s in adopted.slots.items()}
        self.tensor_dtypes = {n: s.dtype for n, s in adopted.slots.items()}
        self.tensor_shapes = {n: s.shape for n, s in adopted.slots.items()}
        self.nbytes = sum(s.nbytes for s in adopted.slots.values())
        self._arenas = adopted.arenas
        self.lost = False
        self.evicted = False
        self.released = False
        self.closed = False

    def close(self) -> None:
        """Unmaps this process's view (the lease stays: see release())."""
        if self.closed:
            return
        self.closed = True
        self.tensors = {}
        still_used = sum(0 if arena.close() else 1 for arena in self._arenas)
        self._arenas = []
        if still_used:
            logger.debug("distorch: model '%s' closed; %d arena(s) stay mapped until the "
                         "tensors that still use them go", self.name, still_used)

    def release(self) -> Optional[t.ModelRef]:
        """Drops this lease (Release RPC) and unmaps. Returns the model as the
        daemon reported it (destroyed=True when this was its last lease)."""
        ref = None
        try:
            if not (self.released or self.lost):
                ref = self._client._release(self)
        finally:
            self.released = True
            self.close()
        return ref

    def __enter__(self) -> "LoadedModel":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "lost" if self.lost else "released" if self.released else "leased"
        return (f"LoadedModel(model_id={self.model_id}, lease_id={self.lease_id}, "
                f"name={self.name!r}, shared={self.shared}, keep_loaded={self.keep_loaded}, "
                f"{len(self.tensors)} tensors, {state})")


# ------------------------------------------------------------------ session stream


class _Session:
    """One open Session stream and the thread that reads its events."""

    def __init__(self, stub: Any, client_name: str, timeout: float,
                 on_evicted: Callable[[Any, "_Session"], None]) -> None:
        self._requests: "queue.Queue[Optional[Any]]" = queue.Queue()
        self._requests.put(pb.SessionRequest(hello=pb.Hello(client_name=client_name,
                                                            pid=os.getpid())))
        self._on_evicted = on_evicted
        self.stub = stub
        self.session_id = 0
        self.fd_channel_path = ""
        self.daemon_version = ""
        self.error: Optional[BaseException] = None
        self.closing = False
        self.started = threading.Event()
        self.broken = threading.Event()
        self.call = stub.Session(self._outgoing())
        self._thread = threading.Thread(target=self._read, name="distorch-session", daemon=True)
        self._thread.start()
        if not self.started.wait(timeout) or self.session_id == 0:
            self.close()
            if self.error is not None:
                raise from_rpc_error(self.error, "opening a session")
            raise DaemonUnavailable(f"distorchd did not start a session within {timeout:g} s")

    def _outgoing(self) -> Iterable[Any]:
        while True:
            item = self._requests.get()
            if item is None:
                return
            yield item

    def _read(self) -> None:
        try:
            for event in self.call:
                kind = event.WhichOneof("kind")
                if kind == "started":
                    self.fd_channel_path = event.started.fd_channel_path
                    self.daemon_version = event.started.daemon_version
                    self.session_id = int(event.started.session_id)
                    self.started.set()
                elif kind == "evicted":
                    self._on_evicted(event.evicted, self)
        except grpc.RpcError as e:
            self.error = e
        except Exception as e:  # a bug in a callback must not hide the break
            logger.exception("distorch: session reader failed")
            self.error = e
        finally:
            self.broken.set()
            self.started.set()
            if not self.closing:
                logger.warning("distorch: session %s with distorchd ended (%s); the next call "
                               "reconnects", self.session_id,
                               getattr(self.error, "details", lambda: "stream closed")()
                               if self.error is not None else "stream closed")

    def close(self) -> None:
        self.closing = True
        self._requests.put(None)  # half-close: the daemon ends the session
        self._thread.join(timeout=1.0)
        self.call.cancel()
        self._thread.join(timeout=1.0)


# ------------------------------------------------------------------ client


class Client:
    """A connection to distorchd with one session (see the module docstring)."""

    def __init__(self, socket_path: Optional[str] = None, client_name: str = "ComfyUI",
                 connect_timeout: float = 3.0) -> None:
        self.socket_path = os.fspath(socket_path) if socket_path else default_socket_path()
        self.client_name = client_name
        self.connect_timeout = connect_timeout
        self.lost_models: List[t.ModelRef] = []
        self._lock = threading.RLock()
        self._models: "weakref.WeakSet[LoadedModel]" = weakref.WeakSet()
        self._models_lock = threading.Lock()
        # A broken session whose models are not yet marked lost.
        self._orphaned_session: Optional[_Session] = None
        self._callbacks: List[Callable[[int, str], None]] = []
        self._channel: Optional[grpc.Channel] = None
        self._session: Optional[_Session] = None
        self._closed = False
        with self._lock:
            self._connect()

    # -- connection -----------------------------------------------------------
    @staticmethod
    def is_available(socket_path: Optional[str] = None) -> bool:
        """True when a daemon accepts connections on the socket (a cheap
        check: no gRPC, no session)."""
        return spawn.answers(os.fspath(socket_path) if socket_path else default_socket_path())

    def _connect(self) -> None:
        if not os.path.exists(self.socket_path):
            raise DaemonUnavailable(
                f"no distorchd socket at {self.socket_path}: is distorchd running? (start it "
                f"with `distorchd`, or set DISTORCH_SOCKET to its socket)")
        channel = grpc.insecure_channel(f"unix:{self.socket_path}", options=_CHANNEL_OPTIONS)
        try:
            grpc.channel_ready_future(channel).result(timeout=self.connect_timeout)
        except grpc.FutureTimeoutError:
            channel.close()
            raise DaemonUnavailable(
                f"distorchd at {self.socket_path} did not answer within "
                f"{self.connect_timeout:g} s: is it running?") from None
        stub = pb_grpc.BrokerStub(channel)
        try:
            session = _Session(stub, self.client_name, self.connect_timeout, self._evicted)
        except BaseException:
            channel.close()
            raise
        self._channel, self._session = channel, session
        logger.info("distorch: connected to distorchd %s at %s (session %d)",
                    session.daemon_version, self.socket_path, session.session_id)

    def _ensure(self) -> _Session:
        """The live session; reconnects (new session) if the stream broke."""
        with self._lock:
            if self._closed:
                raise DistorchError("FAILED_PRECONDITION", "this distorch Client is closed")
            session = self._session
            if session is not None and not session.broken.is_set():
                return session
            if session is not None:
                self._orphaned_session = session
            self._drop_connection()
            self._connect()  # raises DaemonUnavailable while the daemon is down
            old, self._orphaned_session = self._orphaned_session, None
            self._mark_lost(old)
            assert self._session is not None
            return self._session

    def _drop_connection(self) -> None:
        if self._session is not None:
            self._session.close()
        if self._channel is not None:
            self._channel.close()
        self._session = self._channel = None

    def _loaded(self) -> List[LoadedModel]:
        """A snapshot of the LoadedModels still alive in this process."""
        with self._models_lock:
            return list(self._models)

    def _mark_lost(self, old_session: Optional[_Session]) -> None:
        lost = [m for m in self._loaded()
                if m._session is old_session and not (m.released or m.lost)]
        if not lost:
            return
        for m in lost:
            m.lost = True
            self.lost_models.append(t.ModelRef(m.model_id, m.name, destroyed=False))
        logger.warning("distorch: distorchd restarted; %d model(s) of the old session are no "
                       "longer leased (their tensors stay mapped in this process until "
                       "dropped): %s", len(lost), ", ".join(sorted({m.name for m in lost})))

    def _evicted(self, event: Any, session: _Session) -> None:
        model_id, name = int(event.model_id), event.name
        for m in self._loaded():
            if m.model_id == model_id and m._session is session:
                m.lost = m.evicted = True
        logger.warning("distorch: model %d '%s' was evicted by an operator", model_id, name)
        for callback in list(self._callbacks):
            try:
                callback(model_id, name)
            except Exception:
                logger.exception("distorch: on_evicted callback failed")

    @property
    def session_id(self) -> int:
        return self._ensure().session_id

    @property
    def fd_channel_path(self) -> str:
        return self._ensure().fd_channel_path or self.socket_path + ".fd"

    def close(self) -> None:
        """Closes the session (its leases end after the daemon's grace period)
        and the channel. LoadedModels stay mapped until closed or dropped."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._drop_connection()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def on_evicted(self, callback: Callable[[int, str], None]) -> Callable[[int, str], None]:
        """Calls callback(model_id, name) when an operator evicts a model this
        session holds (on the session reader thread). Returns the callback."""
        self._callbacks.append(callback)
        return callback

    def _unary(self, method: str, request: Any, timeout: float = RPC_TIMEOUT_S) -> Any:
        stub = self._ensure().stub
        try:
            return getattr(stub, method)(request, timeout=timeout)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    # -- load -----------------------------------------------------------------
    def load(self, path: Union[str, "os.PathLike[str]"], allocation: str = "",
             compute_device: str = "", keep_loaded: bool = False, pins: Sequence[str] = (),
             allow_spill: bool = False, weight_dtype: str = "", name: Optional[str] = None,
             progress: Optional[Callable[[int, int], None]] = None, writable: bool = False,
             pin_host_memory: bool = False, own_placement: bool = False,
             tensor_prefixes: Sequence[str] = ()) -> LoadedModel:
        """Loads (or attaches to) the model in `path` and maps its tensors.

        The file is opened here (so the daemon reads only what this process
        may read) and its fd passed to the daemon. progress(bytes_loaded,
        bytes_total) is called while the daemon loads (or while another
        session's load of the same model finishes). writable=True maps private
        copy-on-write pages; pin_host_memory=True registers host arenas with
        CUDA (a no-op without CUDA). A model already resident is shared
        whatever allocation it was placed with; own_placement=True asks for a
        residency placed as this call says (a second copy, capacity
        permitting, unless one with that placement exists). tensor_prefixes
        loads a part of the file: only the tensors whose names start with one
        of them, placed as this call says and resident on its own (empty =
        the whole file)."""
        path = os.fspath(path)
        display = name or os.path.basename(path)
        session = self._ensure()
        channel_path = session.fd_channel_path or self.socket_path + ".fd"
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as e:
            code = {errno.ENOENT: "NOT_FOUND", errno.EACCES: "PERMISSION_DENIED",
                    errno.EPERM: "PERMISSION_DENIED"}.get(e.errno or 0, "INVALID_ARGUMENT")
            raise DistorchError(code, f"cannot open model '{path}': {e.strerror}") from None
        try:
            ticket = fd_channel.put_fd(channel_path, fd)
        finally:
            os.close(fd)
        request = pb.LoadRequest(
            session_id=session.session_id, file_ticket=ticket, name=display,
            allocation=allocation or "", compute_device=compute_device or "",
            keep_loaded=bool(keep_loaded), pins=list(pins), allow_spill=bool(allow_spill),
            weight_dtype=weight_dtype or "", own_placement=bool(own_placement),
            tensor_prefixes=list(tensor_prefixes))
        result = None
        call = session.stub.Load(request)
        try:
            for event in call:
                if event.HasField("progress") and progress is not None:
                    progress(int(event.progress.bytes_loaded), int(event.progress.bytes_total))
                elif event.HasField("result"):
                    result = event.result
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None
        except BaseException:
            # The daemon finishes the load; the lease ends with this session.
            call.cancel()
            raise
        if result is None:
            raise DistorchError("INTERNAL", f"load of '{display}': the daemon sent no result")
        return self._adopt(path, display, session, bool(keep_loaded), result, writable,
                           pin_host_memory)

    def _adopt(self, path: str, name: str, session: _Session, keep_loaded: bool, result: Any,
               writable: bool, pin_host_memory: bool) -> LoadedModel:
        from . import adopt  # imports torch

        fds: List[int] = []
        try:
            fds = fd_channel.get_fds(session.fd_channel_path or self.socket_path + ".fd",
                                     result.arena_ticket)
            pci = None
            if any(a.kind == pb.Arena.CUDA_IPC for a in result.arenas):
                pci = {d.name: d.pci_bus_id for d in self.devices()}
            adopted = adopt.adopt(result.arenas, result.tensors, fds, writable=writable,
                                  pin_host_memory=pin_host_memory, pci_bus_ids=pci)
        except BaseException:
            try:
                session.stub.Release(pb.ReleaseRequest(session_id=session.session_id,
                                                       lease_id=result.lease_id),
                                     timeout=RPC_TIMEOUT_S)
            except grpc.RpcError as e:
                logger.warning("distorch: releasing lease %d after a failed adoption: %s",
                               result.lease_id, e.details())
            raise
        finally:
            for fd in fds:
                os.close(fd)
        model = LoadedModel(self, path, name, session, keep_loaded, result, adopted)
        with self._models_lock:
            self._models.add(model)
        return model

    def _release(self, model: LoadedModel) -> Optional[t.ModelRef]:
        if self._closed or model._session is not self._ensure():
            return None  # the lease went with its session
        reply = self._unary("Release", pb.ReleaseRequest(session_id=model.session_id,
                                                         lease_id=model.lease_id))
        return t.model_ref(reply.model) if reply.HasField("model") else None

    # -- keep / free ----------------------------------------------------------
    def free(self, unload_models: bool = True, free_memory: bool = False) -> t.FreeResult:
        """ComfyUI's /free: with unload_models, releases this session's leases
        whose keep_loaded is false (and nothing else; none flagged = no-op).
        This session's LoadedModels that are not kept are marked released and
        closed (their tensors must not be used any more)."""
        session = self._ensure()
        reply = self._unary("Free", pb.FreeRequest(session_id=session.session_id,
                                                   unload_models=unload_models,
                                                   free_memory=free_memory))
        result = t.FreeResult([t.model_ref(m) for m in reply.released], bool(reply.reset_caches))
        if unload_models:
            # Free ends every lease of this session that is not kept, whether or
            # not the model stays resident for other sessions (only destroyed
            # models are sure to be listed in the reply).
            for m in self._loaded():
                if m._session is session and not (m.keep_loaded or m.released
                                                  or m.lost):
                    m.released = True
                    m.close()
        return result

    def soft_empty_cache(self) -> int:
        """Asks the daemon to trim its caches; returns the bytes it trimmed.
        (Emptying this process's own allocator caches is the caller's job.)"""
        reply = self._unary("SoftEmptyCache",
                            pb.SoftEmptyCacheRequest(session_id=self._ensure().session_id))
        return int(reply.trimmed_bytes)

    def set_keep_loaded(self, model_or_id: Union[LoadedModel, int], keep: bool) -> int:
        """Sets keep_loaded on every lease this session holds on the model;
        returns how many changed."""
        model_id = model_or_id.model_id if isinstance(model_or_id, LoadedModel) else int(model_or_id)
        session = self._ensure()
        reply = self._unary("SetKeepLoaded", pb.SetKeepLoadedRequest(
            session_id=session.session_id, model_id=model_id, keep_loaded=bool(keep)))
        for m in self._loaded():
            if m.model_id == model_id and m._session is session:
                m.keep_loaded = bool(keep)
        return int(reply.leases_changed)

    def evict(self, model: Union[LoadedModel, int, str]) -> List[t.ModelRef]:
        """Operator eviction by id or name, whatever its leases (distorchctl evict)."""
        if isinstance(model, LoadedModel):
            request = pb.EvictRequest(model_id=model.model_id)
        elif isinstance(model, int):
            request = pb.EvictRequest(model_id=model)
        else:
            request = pb.EvictRequest(name=str(model))
        return [t.model_ref(m) for m in self._unary("Evict", request).evicted]

    # -- inspection -----------------------------------------------------------
    def devices(self) -> List[t.DeviceInfo]:
        return [t.device_info(d) for d in self._unary("ListDevices", pb.ListDevicesRequest()).devices]

    def models(self) -> List[t.ModelInfo]:
        return [t.model_info(m) for m in self._unary("ListModels", pb.ListModelsRequest()).models]

    def sessions(self) -> List[t.SessionInfo]:
        return [t.session_info(s)
                for s in self._unary("ListSessions", pb.ListSessionsRequest()).sessions]

    def status(self) -> t.StatusInfo:
        return t.status_info(self._unary("Status", pb.StatusRequest()))

    def plan(self, tensors_or_path: Any, allocation: str, compute_device: str = "",
             pins: Sequence[str] = (), allow_spill: bool = False) -> Dict[str, Any]:
        """The placement the daemon would choose, without loading. Accepts a
        safetensors path, a {name: tensor or ndarray} mapping (model order),
        or a list of {"name", "dtype", "shape"[, "nbytes"]} dicts. Returns the
        placement dict (as LoadedModel.placement)."""
        request = pb.PlanRequest(tensors=tensor_metas(tensors_or_path), allocation=allocation,
                                 compute_device=compute_device, pins=list(pins),
                                 allow_spill=allow_spill)
        return t.placement_dict(self._unary("Plan", request).placement)
