"""Tensor adoption: broker memory viewed as torch tensors, without a copy.

A LoadResult names arenas (one per GPU or sim device of the placement; the cpu
part may come in several memfd segments) and, per tensor,
its arena, byte offset, dtype and shape. This module maps each arena into the
process once and builds every tensor as a view at its offset:

* HOST_MEMFD arenas (cpu and sim:N): the memfd received over the fd channel is
  mmap'ed MAP_SHARED + PROT_READ. The daemon seals these memfds against writes,
  so a writable adoption maps MAP_PRIVATE (copy-on-write): a write changes this
  process's copy of the page, never the shared base. Tensors come from
  ``torch.frombuffer`` over a memoryview of the mapping.
* CUDA_IPC arenas (cuda:N): the arena's 64-byte handle is opened once with
  ``cudaIpcOpenMemHandle`` (ctypes on the libcudart torch loaded) and tensors
  are built through ``__cuda_array_interface__``, which torch 1.13 and 2.x both
  accept. This path needs a GPU and is not exercised by the CPU-only tests.

Lifetime: every tensor holds a reference to its arena's mapping, so the
memory stays mapped while any tensor is alive, even after
``LoadedModel.close()``; close() unmaps at once when nothing else uses the
arena. Read-only tensors must not be written in place: the pages are mapped
PROT_READ and such a write faults (SIGSEGV). Use ``writable=True`` (private
copy-on-write pages) or copy the tensor first.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import mmap
import os
import warnings
import weakref
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from .errors import AdoptionError

logger = logging.getLogger(__name__)

# Safetensors dtype names (and the GGML names of plain types) -> torch dtype
# attribute. Anything else (GGML quantised blocks: Q4_0, Q8_0, IQ2_XXS, RAW)
# is exposed as a flat uint8 tensor of its raw bytes.
_TORCH_DTYPES = {
    "F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2",
    "I8": "int8", "U8": "uint8", "I16": "int16", "I32": "int32", "I64": "int64",
    "BOOL": "bool",
}

# cudaHostRegister flags (cuda_runtime_api.h).
_CUDA_HOST_REGISTER_DEFAULT = 0
_CUDA_HOST_REGISTER_READ_ONLY = 0x08
_CUDA_IPC_MEM_LAZY_ENABLE_PEER_ACCESS = 0x1


@dataclass(frozen=True)
class TensorSlot:
    """Where one tensor lives, as the daemon reported it."""
    name: str
    dtype: str          # daemon spelling: F32, BF16, Q4_0, ...
    shape: Tuple[int, ...]
    arena: int
    offset: int
    nbytes: int
    block: str


def torch_dtype(name: str, tensor: str = ""):
    """The torch dtype for a daemon dtype name, or None for raw bytes (GGML
    quantised types). Raises AdoptionError for float8 on a torch without it."""
    import torch

    attr = _TORCH_DTYPES.get(name)
    if attr is None:
        return None
    dtype = getattr(torch, attr, None)
    if dtype is None:
        raise AdoptionError(
            f"tensor '{tensor}' is {name}, but this torch ({torch.__version__}) has no "
            f"torch.{attr}: use torch >= 2.1, or load the model with a weight_dtype this "
            f"torch supports")
    return dtype


_itemsizes: Dict[Any, int] = {}


def _itemsize(dtype) -> int:
    size = _itemsizes.get(dtype)
    if size is None:
        import torch
        size = _itemsizes[dtype] = torch.empty((), dtype=dtype).element_size()
    return size


def _view(flat, slot: TensorSlot):
    """A flat uint8 tensor of the slot's bytes -> the typed, shaped tensor."""
    import torch

    dtype = torch_dtype(slot.dtype, slot.name)
    if dtype is None:
        return flat
    itemsize = _itemsize(dtype)
    count = 1
    for d in slot.shape:
        count *= d
    if count * itemsize != slot.nbytes:
        raise AdoptionError(
            f"tensor '{slot.name}': shape {list(slot.shape)} x {slot.dtype} is "
            f"{count * itemsize} bytes but the daemon placed {slot.nbytes}")
    if dtype != torch.uint8:
        flat = flat.view(dtype)
    return flat.view(slot.shape)


# ------------------------------------------------------------------ host memory


def _unregister_pin(address: int) -> None:
    try:
        import torch
        torch.cuda.cudart().cudaHostUnregister(address)
    except Exception as e:  # interpreter shutdown, no CUDA any more
        logger.debug("distorch: cudaHostUnregister(%#x) failed: %s", address, e)


class HostArena:
    """One HOST_MEMFD arena mapped into this process (owns the mapping; the fd
    passed in is not kept: mmap holds its own)."""

    def __init__(self, fd: int, size: int, device: str, writable: bool = False,
                 pin: bool = False) -> None:
        self.device = device
        self.size = size
        self.writable = writable
        actual = os.fstat(fd).st_size
        if actual < size:
            raise AdoptionError(f"arena on {device}: memfd is {actual} bytes, "
                                f"the daemon announced {size}")
        access = mmap.ACCESS_COPY if writable else mmap.ACCESS_READ
        self._mm: Optional[mmap.mmap] = mmap.mmap(fd, size, access=access)
        # Tensors hold this memoryview, which holds an export of the mmap: the
        # mmap then cannot be closed under a live tensor (BufferError).
        self._view: Optional[memoryview] = memoryview(self._mm)
        self.pinned = False
        if pin:
            self._pin()

    def _pin(self) -> None:
        """cudaHostRegister the mapping so host->GPU copies run at full speed.
        A no-op without CUDA. Not covered by the CPU-only tests."""
        import torch

        if not torch.cuda.is_available() or self.size == 0:
            return
        base = self.tensor(TensorSlot("", "U8", (self.size,), 0, 0, self.size, ""))
        address = base.data_ptr()
        flags = _CUDA_HOST_REGISTER_DEFAULT if self.writable else _CUDA_HOST_REGISTER_READ_ONLY
        err = torch.cuda.cudart().cudaHostRegister(address, self.size, flags)
        if int(getattr(err, "value", err)) != 0:
            logger.warning("distorch: pinning %s of host memory (%s) failed: %s; copies from "
                           "it run unpinned", self.size, self.device, err)
            return
        self.pinned = True
        # The registration ends when the mapping goes (last tensor or close()).
        weakref.finalize(self._mm, _unregister_pin, address)

    def tensor(self, slot: TensorSlot):
        import torch

        if self._view is None:
            raise AdoptionError(f"arena on {self.device} is closed")
        if slot.offset + slot.nbytes > self.size:
            raise AdoptionError(f"tensor '{slot.name}': [{slot.offset}, +{slot.nbytes}) lies "
                                f"outside its {self.size}-byte arena on {self.device}")
        if slot.nbytes == 0:
            flat = torch.empty((0,), dtype=torch.uint8)
        else:
            # Read-only on purpose (the shared base is immutable): torch's
            # "buffer is not writable" warning is silenced by adopt(), once.
            flat = torch.frombuffer(self._view, dtype=torch.uint8, count=slot.nbytes,
                                    offset=slot.offset)
        return _view(flat, slot)

    def close(self) -> bool:
        """Drops this arena's own references. Returns True if the memory was
        unmapped now; False if tensors still use it (it is unmapped when the
        last of them goes)."""
        mm, self._mm, self._view = self._mm, None, None
        if mm is None:
            return True
        try:
            mm.close()
            return True
        except BufferError:
            return False


# ------------------------------------------------------------------ CUDA IPC
# Everything below needs a CUDA device; it is kept small and separate because
# the CI machines (and this test suite) have none.


class _IpcHandle(ctypes.Structure):
    _fields_ = [("reserved", ctypes.c_char * 64)]


_cudart_lib = None


def _cudart():
    """libcudart, preferring the one this process (torch) already loaded."""
    global _cudart_lib
    if _cudart_lib is not None:
        return _cudart_lib
    candidates: List[str] = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if len(line.split()) >= 6 else ""
                if "libcudart" in os.path.basename(path) and path not in candidates:
                    candidates.append(path)
    except OSError:
        pass
    found = ctypes.util.find_library("cudart")
    candidates += [c for c in (found, "libcudart.so.12", "libcudart.so.11.0", "libcudart.so") if c]
    for candidate in candidates:
        try:
            _cudart_lib = ctypes.CDLL(candidate)
            return _cudart_lib
        except OSError:
            continue
    raise AdoptionError("cannot load libcudart to open CUDA IPC handles (tried "
                        + ", ".join(candidates) + ")")


def _check(lib, err: int, what: str) -> None:
    if err != 0:
        lib.cudaGetErrorString.restype = ctypes.c_char_p
        text = lib.cudaGetErrorString(err) or b"?"
        raise AdoptionError(f"{what} failed: CUDA error {err} ({text.decode()})")


def _close_ipc(lib, address: int, local_index: int) -> None:
    try:
        prev = ctypes.c_int()
        lib.cudaGetDevice(ctypes.byref(prev))
        lib.cudaSetDevice(local_index)
        lib.cudaIpcCloseMemHandle(ctypes.c_void_p(address))
        lib.cudaSetDevice(prev.value)
    except Exception as e:
        logger.debug("distorch: cudaIpcCloseMemHandle(%#x) failed: %s", address, e)


class _CudaBytes:
    """A byte run of an opened IPC arena, in __cuda_array_interface__ form.
    Tensors keep it (and through it the arena) alive."""

    def __init__(self, arena: "CudaIpcArena", address: int, nbytes: int) -> None:
        self._arena = arena
        self.__cuda_array_interface__ = {
            "shape": (nbytes,), "typestr": "|u1", "data": (address, False),
            "strides": None, "version": 2}


class CudaIpcArena:
    """One CUDA_IPC arena opened in this process. The handle is closed when
    this object and every tensor built from it are gone."""

    def __init__(self, handle: bytes, size: int, device: str, local_index: int) -> None:
        import torch

        if not torch.cuda.is_available():
            raise AdoptionError(
                f"the model has an arena on {device} (CUDA IPC), but this process has no "
                f"CUDA (torch.cuda.is_available() is False): load it with an allocation "
                f"that uses cpu only, or run this client where the GPU is visible")
        if len(handle) != 64:
            raise AdoptionError(f"arena on {device}: IPC handle is {len(handle)} bytes, not 64")
        torch.cuda.init()  # the primary context torch uses
        lib = _cudart()
        self.device = device
        self.size = size
        self.local_index = local_index
        pointer = ctypes.c_void_p()
        prev = ctypes.c_int()
        _check(lib, lib.cudaGetDevice(ctypes.byref(prev)), "cudaGetDevice")
        _check(lib, lib.cudaSetDevice(local_index), f"cudaSetDevice({local_index})")
        try:
            _check(lib, lib.cudaIpcOpenMemHandle(
                ctypes.byref(pointer), _IpcHandle.from_buffer_copy(handle),
                _CUDA_IPC_MEM_LAZY_ENABLE_PEER_ACCESS), f"cudaIpcOpenMemHandle on {device}")
        finally:
            lib.cudaSetDevice(prev.value)
        self.address = int(pointer.value or 0)
        self._finalizer = weakref.finalize(self, _close_ipc, lib, self.address, local_index)

    def tensor(self, slot: TensorSlot):
        import torch

        if slot.offset + slot.nbytes > self.size:
            raise AdoptionError(f"tensor '{slot.name}': [{slot.offset}, +{slot.nbytes}) lies "
                                f"outside its {self.size}-byte arena on {self.device}")
        target = torch.device("cuda", self.local_index)
        # Under the arena's device, so no torch version takes the pointer for
        # another GPU's (which would make as_tensor copy).
        with torch.cuda.device(self.local_index):
            if slot.nbytes == 0:
                flat = torch.empty((0,), dtype=torch.uint8, device=target)
            else:
                flat = torch.as_tensor(_CudaBytes(self, self.address + slot.offset, slot.nbytes),
                                       device=target)
        return _view(flat, slot)

    def close(self) -> bool:
        return not self._finalizer.alive


def local_cuda_index(pci_bus_id: str, fallback: int) -> int:
    """This process's index of the GPU the daemon calls cuda:N: found by PCI bus
    id, since CUDA_VISIBLE_DEVICES may number GPUs differently here."""
    if not pci_bus_id:
        return fallback
    lib = _cudart()
    index = ctypes.c_int()
    if lib.cudaDeviceGetByPCIBusId(ctypes.byref(index), pci_bus_id.encode()) == 0:
        return index.value
    return fallback


# ------------------------------------------------------------------ adoption


@dataclass
class Adopted:
    arenas: List[Any]                 # HostArena / CudaIpcArena, in arena order
    tensors: Dict[str, Any]           # name -> torch.Tensor (file order)
    slots: Dict[str, TensorSlot]


def adopt(arenas: Sequence[Any], tensors: Sequence[Any], fds: Sequence[int], *,
          writable: bool = False, pin_host_memory: bool = False,
          pci_bus_ids: Optional[Dict[str, str]] = None) -> Adopted:
    """Maps a LoadResult's arenas and views its tensors. `arenas`/`tensors` are
    the reply's Arena/TensorLocation messages; `fds` the HOST_MEMFD arenas'
    fds in arena order (not closed here). On error, whatever was mapped is
    released before the error propagates."""
    opened: List[Any] = []
    fd_iter = iter(fds)
    try:
        with warnings.catch_warnings():
            # Host arenas are read-only on purpose; one filter for all tensors
            # (a filter per tensor cost a fifth of an attach).
            warnings.filterwarnings("ignore", message=".*not writable.*")
            return _adopt_into(arenas, tensors, fd_iter, opened, writable, pin_host_memory,
                               pci_bus_ids)
    except BaseException:
        for arena in opened:
            arena.close()
        raise


def _adopt_into(arenas, tensors, fd_iter, opened: List[Any], writable: bool,
                pin_host_memory: bool, pci_bus_ids: Optional[Dict[str, str]]) -> Adopted:
    """adopt()'s work; every arena it maps goes into `opened` at once."""
    from .v1 import broker_pb2 as pb

    for arena in arenas:
        if arena.kind == pb.Arena.HOST_MEMFD:
            fd = next(fd_iter, None)
            if fd is None:
                raise AdoptionError(f"the daemon sent fewer memfds than host arenas "
                                    f"(none for arena {arena.index} on {arena.device})")
            opened.append(HostArena(fd, int(arena.bytes), arena.device, writable,
                                    pin_host_memory))
        elif arena.kind == pb.Arena.CUDA_IPC:
            index = int(arena.cuda_device)
            if pci_bus_ids and arena.device in pci_bus_ids:
                index = local_cuda_index(pci_bus_ids[arena.device], index)
            opened.append(CudaIpcArena(bytes(arena.cuda_ipc_handle), int(arena.bytes),
                                       arena.device, index))
        else:
            raise AdoptionError(f"arena {arena.index} on {arena.device} has unknown kind "
                                f"{arena.kind}: is this client older than the daemon?")
    out: Dict[str, Any] = {}
    slots: Dict[str, TensorSlot] = {}
    for loc in tensors:
        slot = TensorSlot(loc.name, loc.dtype, tuple(int(d) for d in loc.shape),
                          int(loc.arena), int(loc.offset), int(loc.nbytes), loc.block)
        if slot.arena >= len(opened):
            raise AdoptionError(f"tensor '{slot.name}' names arena {slot.arena}; the reply "
                                f"has {len(opened)}")
        out[slot.name] = opened[slot.arena].tensor(slot)
        slots[slot.name] = slot
    return Adopted(opened, out, slots)
