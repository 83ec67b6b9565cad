"""Plain result types of the distorch client, converted from distorch.v1
replies. Sizes are ints (bytes); device names are the broker's ("cpu",
"sim:0", "cuda:1")."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List


@dataclass
class ModelRef:
    """A model a call released or evicted. `destroyed`: its last lease went,
    so its memory is back."""
    model_id: int
    name: str
    destroyed: bool = False


@dataclass
class FreeResult:
    released: List[ModelRef] = field(default_factory=list)
    reset_caches: bool = False  # the client should reset its executor caches


@dataclass
class DeviceBytes:
    device: str
    bytes: int
    quota: int = 0
    blocks: int = 0


@dataclass
class DeviceInfo:
    name: str
    kind: str  # "host", "sim", "cuda"
    description: str
    total_bytes: int
    free_bytes: int
    reserve_bytes: int
    broker_bytes: int
    available_bytes: int
    limit_bytes: int = 0
    pci_bus_id: str = ""
    compute_capability: str = ""
    peers: List[str] = field(default_factory=list)


@dataclass
class LeaseInfo:
    lease_id: int
    session_id: int
    model_id: int
    model_name: str
    keep_loaded: bool


@dataclass
class ModelInfo:
    model_id: int
    name: str
    state: str  # "loading", "ready"
    bytes_total: int
    bytes_loaded: int
    devices: List[DeviceBytes]
    leases: List[LeaseInfo]
    identity: str = ""
    weight_dtype: str = ""
    tensors: int = 0
    allocation: str = ""  # canonical allocation the residency was placed with
    compute_device: str = ""
    own_placement: bool = False  # a second residency an own_placement load made
    tensor_prefixes: List[str] = field(default_factory=list)  # a part of the file; [] = all


@dataclass
class SessionInfo:
    session_id: int
    client_name: str
    pid: int
    connected: bool
    disconnected_ms: int
    leases: List[LeaseInfo]


@dataclass
class StatusInfo:
    version: str
    uptime_ms: int
    socket_path: str
    fd_channel_path: str
    sessions: int
    models: int
    broker_bytes: Dict[str, int]  # device -> bytes held by the broker's arenas
    grace_period_ms: int
    cuda_available: bool
    cuda_note: str


# ------------------------------------------------------------------ conversion


def device_bytes(pb: Any) -> DeviceBytes:
    return DeviceBytes(pb.device, int(pb.bytes), int(pb.quota), int(pb.blocks))


def model_ref(pb: Any) -> ModelRef:
    return ModelRef(int(pb.model_id), pb.name, bool(pb.destroyed))


def device_info(pb: Any) -> DeviceInfo:
    return DeviceInfo(pb.name, pb.kind, pb.description, int(pb.total_bytes), int(pb.free_bytes),
                      int(pb.reserve_bytes), int(pb.broker_bytes), int(pb.available_bytes),
                      int(pb.limit_bytes), pb.pci_bus_id, pb.compute_capability, list(pb.peers))


def lease_info(pb: Any) -> LeaseInfo:
    return LeaseInfo(int(pb.lease_id), int(pb.session_id), int(pb.model_id), pb.model_name,
                     bool(pb.keep_loaded))


def model_info(pb: Any) -> ModelInfo:
    return ModelInfo(int(pb.model_id), pb.name, pb.state, int(pb.bytes_total),
                     int(pb.bytes_loaded), [device_bytes(d) for d in pb.devices],
                     [lease_info(lease) for lease in pb.leases], pb.identity, pb.weight_dtype,
                     int(pb.tensors), pb.allocation, pb.compute_device,
                     bool(pb.own_placement), list(pb.tensor_prefixes))


def session_info(pb: Any) -> SessionInfo:
    return SessionInfo(int(pb.session_id), pb.client_name, int(pb.pid), bool(pb.connected),
                       int(pb.disconnected_ms), [lease_info(lease) for lease in pb.leases])


def status_info(pb: Any) -> StatusInfo:
    return StatusInfo(pb.version, int(pb.uptime_ms), pb.socket_path, pb.fd_channel_path,
                      int(pb.sessions), int(pb.models),
                      {d.device: int(d.bytes) for d in pb.broker_bytes}, int(pb.grace_period_ms),
                      bool(pb.cuda_available), pb.cuda_note)


def placement_dict(pb: Any) -> Dict[str, Any]:
    """A Placement as a plain dict: total_bytes, compute_device, allocation,
    devices [{device, bytes, quota, blocks}], blocks [{block, device, bytes,
    reason}] in model order, notes [str]."""
    return {
        "total_bytes": int(pb.total_bytes),
        "compute_device": pb.compute_device,
        "allocation": pb.allocation,
        "devices": [{"device": d.device, "bytes": int(d.bytes), "quota": int(d.quota),
                     "blocks": int(d.blocks)} for d in pb.devices],
        "blocks": [{"block": b.block, "device": b.device, "bytes": int(b.bytes),
                    "reason": b.reason} for b in pb.blocks],
        "notes": list(pb.notes),
    }
