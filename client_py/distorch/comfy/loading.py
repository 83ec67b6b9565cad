"""Builds ComfyUI models whose parameters are the broker's tensors.

A distorch loader node calls ComfyUI's own loader function inside `adopting()`.
There, comfy.utils.load_torch_file answers with the broker's zero-copy views
instead of reading the file, and torch's Module._load_from_state_dict, which
would copy every tensor into freshly allocated parameters, makes the broker
tensor itself the parameter when shape and dtype match. What ComfyUI creates
on the way (renamed-and-transposed keys, dtype casts) stays the client's own
memory; `Adoption.summary` counts it for the log.

With ComfyUI's DynamicVRAM on, comfy.ops layers load through their own
lazy loader instead of torch's; `Adoption.adopt_lazy` does the same there
(dynamic_vram.py installs that hook).

Before the real load a skeleton pass runs the same loader on meta tensors
(no data, no broker) to learn which tensors land in modules that ComfyUI
cannot stream (no cast-at-forward); those blocks are the planner's pins.

Thread contract: one adoption per thread at a time (thread-local state); the
hooks installed by `install` do nothing on threads that are not adopting.
"""

from __future__ import annotations

import bisect
import contextlib
import inspect
import logging
import os
import threading
from dataclasses import dataclass, field
from types import ModuleType
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from . import dynamic_vram, header, make_room, patches

logger = logging.getLogger(__name__)

_local = threading.local()

# torch's local_metadata key for load_state_dict(assign=True) (torch >= 2.1).
ASSIGN_FLAG = "assign_to_params_buffers"
# The TensorIndex of the broker memory a model's tensors were adopted from.
BROKER_MEMORY_ATTR = "_distorch_broker_memory"


@dataclass(frozen=True)
class LoadOptions:
    """What a loader node asks the broker for (the lease's identity)."""
    compute_device: str          # broker device name: cuda:N, sim:N, cpu
    allocation: str = ""         # allocation string; "" = all on compute
    keep_loaded: bool = False
    allow_spill: bool = False
    weight_dtype: str = ""
    own_placement: bool = False  # a residency placed as asked, not another load's


@dataclass(frozen=True)
class FilePart:
    """A part of one file loaded as a residency of its own (distorchd's
    tensor_prefixes): the tensors whose names start with one of `prefixes`,
    placed by `options` (e.g. a checkpoint's text encoder on its own device
    and allocation)."""
    role: str                  # what it is, for the log: "unet", "clip", "vae"
    prefixes: Tuple[str, ...]
    options: LoadOptions


# (path, the node's LoadOptions) -> the parts to load that file in; () = whole.
PartsFor = Callable[[str, LoadOptions], Sequence[FilePart]]


class SkeletonUnsupported(Exception):
    """The skeleton pass met something it cannot fake (not a safetensors file)."""


class TensorIndex:
    """Maps any tensor back to the broker tensor whose memory it lies in."""

    def __init__(self) -> None:
        self._spans: Dict[str, List[Tuple[int, int, str, str]]] = {}
        self._starts: Dict[str, List[int]] = {}

    def add(self, tensor: torch.Tensor, name: str, device: str) -> None:
        if tensor.device.type == "meta" or tensor.numel() == 0:
            return
        start = tensor.data_ptr()
        spans = self._spans.setdefault(tensor.device.type, [])
        spans.append((start, start + tensor.numel() * tensor.element_size(), name, device))
        self._starts.pop(tensor.device.type, None)

    def lookup(self, tensor: torch.Tensor) -> Optional[Tuple[str, str]]:
        """(broker tensor name, broker device) or None for memory the broker
        does not own."""
        kind = tensor.device.type
        spans = self._spans.get(kind)
        if not spans or tensor.numel() == 0:
            return None
        starts = self._starts.get(kind)
        if starts is None:
            spans.sort()
            starts = self._starts[kind] = [s[0] for s in spans]
        ptr = tensor.data_ptr()
        i = bisect.bisect_right(starts, ptr) - 1
        if i >= 0 and ptr < spans[i][1]:
            return spans[i][2], spans[i][3]
        return None


def nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


@dataclass
class Adoption:
    """One loader node's call: the files it loaded and what it adopted."""
    mode: str                                  # "skeleton" or "real"
    options: LoadOptions
    client: object = None
    pins: Tuple[str, ...] = ()
    loaded: List[Tuple[str, object]] = field(default_factory=list)   # (path, LoadedModel)
    index: TensorIndex = field(default_factory=TensorIndex)
    unstreamable: set = field(default_factory=set)
    copied: List[Tuple[str, int, str]] = field(default_factory=list)
    paths: List[str] = field(default_factory=list)
    # Files to load in parts (see in_parts); None: each file is one load.
    parts_for: Optional[PartsFor] = field(default_factory=lambda: getattr(_local, "parts_for", None))
    _meta: Dict[int, Tuple[str, torch.Tensor]] = field(default_factory=dict)
    _part_options: Dict[int, LoadOptions] = field(default_factory=dict)  # id(loaded) -> options
    _part_compute: Dict[str, str] = field(default_factory=dict)  # part tensor -> its compute device

    # -- file interception --------------------------------------------------
    def load_file(self, path: str, return_metadata: bool):
        self.paths.append(path)
        if self.mode == "skeleton":
            if not header.is_safetensors(path):
                raise SkeletonUnsupported(path)
            sd, metadata = header.meta_state_dict(path)
            for name, t in sd.items():
                self._meta[id(t)] = (name, t)
        else:
            if not header.is_safetensors(path):
                logger.info("distorch: %s is not a safetensors file; ComfyUI loads it itself "
                            "(not shared)", os.path.basename(path))
                return None
            parts = tuple(self.parts_for(path, self.options)) if self.parts_for else ()
            if parts and not _accepts(self.client.load, "tensor_prefixes"):
                logger.warning("distorch: %s: this distorch client cannot load part of a file; "
                               "loading it whole with the %s part's placement",
                               os.path.basename(path), parts[0].role)
                parts = ()
            sd = {}
            for part in parts or (None,):
                sd.update(self.broker_load(path, part).tensors)
            if parts:
                logger.info(parts_line(path, list(zip(parts, (m for _, m in self.loaded[-len(parts):])))))
            metadata = header.read_safetensors_header(path)[1]
        return (sd, header.metadata_or_none(metadata)) if return_metadata else sd

    def loaded_for(self, path: str):
        """The broker model for `path` in this adoption (loads it once)."""
        for p, loaded in self.loaded:
            if p == path:
                return loaded
        return self.broker_load(path)

    def broker_load(self, path: str, part: Optional[FilePart] = None):
        opts = part.options if part is not None else self.options
        extra = {}
        if part is not None:
            extra["tensor_prefixes"] = tuple(part.prefixes)
        if opts.compute_device.startswith("cuda") and _accepts(self.client.load, "pin_host_memory"):
            extra["pin_host_memory"] = True  # host blocks feed a GPU: pin them
        if opts.own_placement:
            if not _accepts(self.client.load, "own_placement"):
                raise RuntimeError("distorch: own_placement is on, but this distorch client "
                                   "cannot ask distorchd for a placement of its own (update "
                                   "distorch, or turn own_placement off to share the resident copy)")
            extra["own_placement"] = True

        def load():
            return self.client.load(
                path, allocation=opts.allocation, compute_device=opts.compute_device,
                keep_loaded=opts.keep_loaded, pins=tuple(self.pins), allow_spill=opts.allow_spill,
                weight_dtype=opts.weight_dtype, name=os.path.basename(path), **extra)
        try:
            loaded = load()
        except Exception as e:
            # the broker is short where ComfyUI in this process holds memory:
            # free it the way ComfyUI does and try once more
            freed = make_room.make_room(e, os.path.basename(path))
            if freed is None:
                raise
            logger.info(freed)
            loaded = load()
        self.loaded.append((path, loaded))
        if part is not None:
            self._part_options[id(loaded)] = opts
            for name in loaded.tensors:
                self._part_compute[name] = opts.compute_device
        for name, tensor in loaded.tensors.items():
            self.index.add(tensor, name, loaded.tensor_devices.get(name, opts.compute_device))
        return loaded

    # -- parameter adoption (called from Module._load_from_state_dict) ------
    def adopt_into(self, module: torch.nn.Module, state_dict: dict, prefix: str,
                   local_metadata: Optional[dict] = None) -> None:
        # load_state_dict(assign=True) (ComfyUI 0.33 loads that way for a
        # DynamicVRAM patcher) makes state_dict[key] the parameter as it is,
        # dtype included: a dtype the module does not use must be cast here.
        assign = bool((local_metadata or {}).get(ASSIGN_FLAG, False))
        for slot in ("_parameters", "_buffers"):
            tensors = getattr(module, slot)
            for pname, current in list(tensors.items()):
                if current is None:
                    continue
                if slot == "_buffers" and pname in getattr(module, "_non_persistent_buffers_set", ()):
                    continue
                key = prefix + pname
                incoming = state_dict.get(key)
                if not isinstance(incoming, torch.Tensor) or incoming.shape != current.shape:
                    continue  # ComfyUI reports shape errors itself
                if self.mode == "skeleton":
                    origin = self._meta.get(id(incoming))
                    streamable = (slot == "_parameters" and pname in ("weight", "bias")
                                  and hasattr(module, "comfy_cast_weights"))
                    if origin is not None and not streamable:
                        self.unstreamable.add(origin[0])
                    if incoming.device.type == "meta" or current.device.type == "meta":
                        replacement = incoming if incoming.dtype == current.dtype else \
                            torch.empty_like(current, device="meta")
                        self._assign(tensors, slot, pname, key, current, replacement, state_dict)
                    continue
                if self.index.lookup(incoming) is None:
                    continue  # not broker memory: ComfyUI copies it (client-owned)
                if incoming.dtype != current.dtype:
                    self.copied.append((key, nbytes(current), f"{incoming.dtype}->{current.dtype}"))
                    if assign:
                        state_dict[key] = incoming.to(current.dtype)
                    continue
                self._assign(tensors, slot, pname, key, current, incoming, state_dict)

    # -- lazily initialised layers (ComfyUI 0.33 with DynamicVRAM on) -------
    def adopt_lazy(self, module: torch.nn.Module, state_dict: dict, prefix: str,
                   local_metadata: dict) -> dict:
        """For comfy.ops layers that load through
        disable_weight_init._lazy_load_from_state_dict and never reach
        Module._load_from_state_dict: that loader clones every tensor unless
        asked to assign. Broker tensors in the layer's dtype are assigned as
        they are (the parameter is the broker's memory); a broker tensor in
        another dtype becomes a copy in the layer's dtype, as a classic load
        would give; other tensors are cloned as ComfyUI would. Returns the
        local_metadata to load with (assigning)."""
        assigning_already = bool(local_metadata.get(ASSIGN_FLAG, False))
        for key in [k for k in state_dict if k.startswith(prefix)]:
            pname = key[len(prefix):]
            incoming = state_dict[key]
            if pname not in ("weight", "bias") or not isinstance(incoming, torch.Tensor):
                continue
            if self.index.lookup(incoming) is None:
                if not assigning_already:
                    state_dict[key] = incoming.clone()  # ComfyUI's own copy, as without distorch
                continue
            want = getattr(module, pname + "_comfy_model_dtype", None) or incoming.dtype
            if incoming.dtype != want:
                self.copied.append((key, incoming.numel() * _itemsize(want), f"{incoming.dtype}->{want}"))
                state_dict[key] = incoming.to(want)
        return dict(local_metadata, **{ASSIGN_FLAG: True})

    @staticmethod
    def _assign(tensors, slot, pname, key, current, incoming, state_dict) -> None:
        if slot == "_parameters":
            grad = bool(current.requires_grad and incoming.is_floating_point())
            incoming = torch.nn.Parameter(incoming, requires_grad=grad)
        tensors[pname] = incoming
        # torch copies state_dict[key] into the parameter next; make that a
        # copy onto itself, which torch skips (no write into read-only memory).
        state_dict[key] = incoming

    # -- results ------------------------------------------------------------
    def skeleton_pins(self) -> Tuple[str, ...]:
        return tuple(sorted({header.block_of(name) for name in self.unstreamable}))

    def param_devices(self, root: torch.nn.Module) -> Dict[str, Optional[str]]:
        """{param or buffer key: broker device} for `root`; None = client-owned.
        Also leaves the broker's memory map on `root` (BROKER_MEMORY_ATTR),
        which accounting.py reads to tell ComfyUI's bytes from the broker's."""
        setattr(root, BROKER_MEMORY_ATTR, self.index)
        out: Dict[str, Optional[str]] = {}
        for key, t in list(root.named_parameters()) + list(root.named_buffers()):
            hit = self.index.lookup(t)
            out[key] = hit[1] if hit else None
        return out

    def compute_for(self, root: torch.nn.Module) -> str:
        """The compute device `root` runs on: the node's, or, when the file was
        loaded in parts, the compute device of the part holding most of
        root's broker bytes (an advanced checkpoint's text encoder computes
        where its own part was placed for, not on the UNet's device)."""
        if not self._part_compute:
            return self.options.compute_device
        weight: Dict[str, int] = {}
        for _, t in list(root.named_parameters()) + list(root.named_buffers()):
            hit = self.index.lookup(t)
            compute = self._part_compute.get(hit[0]) if hit else None
            if compute is not None:
                weight[compute] = weight.get(compute, 0) + nbytes(t)
        return max(weight, key=weight.get) if weight else self.options.compute_device

    def summary(self, roots: List[torch.nn.Module]) -> str:
        shared = own = own_tensors = 0
        per_device: Dict[str, int] = {}
        seen = set()
        for root in roots:
            for _, t in list(root.named_parameters()) + list(root.named_buffers()):
                if id(t) in seen or t.device.type == "meta":
                    continue
                seen.add(id(t))
                hit = self.index.lookup(t)
                if hit:
                    shared += nbytes(t)
                    per_device[hit[1]] = per_device.get(hit[1], 0) + nbytes(t)
                else:
                    own += nbytes(t)
                    own_tensors += 1
        casts = len(self.copied)
        devices_text = ", ".join(f"{d} {fmt_bytes(b)}" for d, b in sorted(per_device.items()))
        names = ", ".join(dict.fromkeys(os.path.basename(p) for p, _ in self.loaded))
        share = [getattr(m, "shared", False) for _, m in self.loaded]
        return (f"distorch: {names}: {fmt_bytes(shared)} of broker memory used in place "
                f"({devices_text or 'none'}){'; attached to an existing residency' if any(share) else ''}; "
                f"client-owned {fmt_bytes(own)} in {own_tensors} tensor(s) "
                f"({casts} dtype cast(s) by ComfyUI, the rest created by its key conversion "
                f"or not in the file)")

    def placement_differences(self, allocation: str) -> List[str]:
        """Log lines for loads that attached to a residency placed for another
        request (another compute device or allocation) than this one's."""
        lines = []
        for _, loaded in self.loaded:
            part = self._part_options.get(id(loaded))  # a part asked with its own options
            line = (placement_difference(loaded, part, part.allocation) if part is not None
                    else placement_difference(loaded, self.options, allocation))
            if line:
                lines.append(line)
        return lines


def parts_line(path: str, parts: List[Tuple[FilePart, object]]) -> str:
    """One log line: what each part of `path` asked for and where its weights are."""
    described = []
    for part, loaded in parts:
        where: Dict[str, int] = {}
        for name, device in getattr(loaded, "tensor_devices", {}).items():
            t = loaded.tensors.get(name)
            where[device] = where.get(device, 0) + (nbytes(t) if isinstance(t, torch.Tensor) else 0)
        asked = (f"allocation '{part.options.allocation}'" if part.options.allocation
                 else "all on compute")
        described.append(
            f"{part.role} ({', '.join(part.prefixes)}): compute {part.options.compute_device}, "
            f"{asked} -> {', '.join(f'{d} {fmt_bytes(b)}' for d, b in sorted(where.items())) or 'nothing'}"
            f"{' (shared)' if getattr(loaded, 'shared', False) else ''}")
    return (f"distorch: {os.path.basename(path)} loaded in {len(parts)} parts, each a broker "
            f"residency of its own: " + "; ".join(described))


def _devices_named(allocation: str) -> set:
    """The device names an allocation string mentions (cuda:N, sim:N, cpu)."""
    import re
    return {m.lower().replace(" ", "") for m in re.findall(r"\b(?:cuda|sim)\s*:\s*\d+|\bcpu\b",
                                                           allocation, flags=re.IGNORECASE)}


def placement_difference(loaded, options: LoadOptions, allocation: str) -> str:
    """"" when `loaded` is placed as asked (or is a fresh residency), else a
    line saying what was asked and where its weights really are.

    distorchd reports what the residency was placed for and what this load
    asked for, both canonical (residency_* / requested_* on LoadedModel);
    with an older daemon the request is compared with the residency's compute
    device, its "was not applied" note and the devices the weights are on."""
    if not getattr(loaded, "shared", False):
        return ""
    placement = getattr(loaded, "placement", None) or {}
    made_compute = getattr(loaded, "residency_compute_device", "") or placement.get("compute_device", "")
    made_alloc = getattr(loaded, "residency_allocation", None)
    if made_alloc is None:
        made_alloc = placement.get("allocation", "")
    actual: Dict[str, int] = {}
    for name, device in getattr(loaded, "tensor_devices", {}).items():
        t = loaded.tensors.get(name) if getattr(loaded, "tensors", None) else None
        actual[device] = actual.get(device, 0) + (nbytes(t) if isinstance(t, torch.Tensor) else 0)
    asked_compute = getattr(loaded, "requested_compute_device", "")
    if asked_compute:
        differs = ((made_alloc, made_compute)
                   != (getattr(loaded, "requested_allocation", ""), asked_compute))
    else:
        # an allocation without '*' sends the rest to cpu
        asked = (_devices_named(allocation) | {options.compute_device, "cpu"} if allocation
                 else {options.compute_device})
        differs = bool((made_compute and made_compute != options.compute_device)
                       or "was not applied" in " ".join(placement.get("notes", []))
                       or any(d not in asked for d in actual))
    if not differs:
        return ""
    where = ", ".join(f"{d} {fmt_bytes(b)}" for d, b in sorted(actual.items())) or "unknown"
    asked_text = f"allocation '{allocation}'" if allocation else f"everything on {options.compute_device}"
    made_text = f"allocation '{made_alloc}'" if made_alloc else "no allocation"
    name = getattr(loaded, "name", "") or os.path.basename(getattr(loaded, "path", ""))
    return (f"distorch: {name}: asked for compute {options.compute_device}, {asked_text}, "
            f"but the model was already resident, placed for compute {made_compute or '?'}, "
            f"{made_text}; this load shares that copy: its weights are on {where}. Turn on "
            f"own_placement on the node for a copy placed as asked (if there is room)")


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _accepts(func, name: str) -> bool:
    try:
        return name in inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False


def fmt_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} TiB"


def active() -> Optional[Adoption]:
    return getattr(_local, "adoption", None)


@contextlib.contextmanager
def in_parts(parts_for: PartsFor) -> Iterator[None]:
    """Adoptions created on this thread inside the block load each file in
    the parts parts_for names (the advanced checkpoint loaders: their node
    runs nodes.run_broker, which creates the Adoption)."""
    previous = getattr(_local, "parts_for", None)
    _local.parts_for = parts_for
    try:
        yield
    finally:
        _local.parts_for = previous


@contextlib.contextmanager
def adopting(adoption: Adoption) -> Iterator[Adoption]:
    previous = active()
    _local.adoption = adoption
    try:
        yield adoption
    finally:
        _local.adoption = previous


def heuristic_pins(paths: List[str]) -> Tuple[str, ...]:
    """Without a skeleton pass: pin tensors that are not a module's weight or
    bias (raw parameters ComfyUI has no cast-at-forward for)."""
    pins = set()
    for path in paths:
        if not header.is_safetensors(path):
            continue
        try:
            names = header.read_safetensors_header(path)[0]
        except (OSError, ValueError):
            continue
        for name in names:
            if name.rsplit(".", 1)[-1] not in ("weight", "bias"):
                pins.add(header.block_of(name))
    return tuple(sorted(pins))


# ---------------------------------------------------------------- hooks

def _intercept(path, return_metadata: bool):
    adoption = active()
    if adoption is None:
        return None
    return adoption.load_file(os.fspath(path), return_metadata)


def install(mm: ModuleType, utils: ModuleType) -> List[patches.Undo]:
    """Installs the three hooks adoption needs. Each is inert on threads that
    are not adopting."""
    undos: List[patches.Undo] = []
    undo = patches.patch_load_torch_file(utils, _intercept)
    if undo:
        undos.append(undo)

    original = torch.nn.Module._load_from_state_dict
    problem = patches.signature_problem(original, required=(
        "self", "state_dict", "prefix", "local_metadata", "strict", "missing_keys",
        "unexpected_keys", "error_msgs"))
    if problem:
        patches.report_left_out("torch.nn.Module._load_from_state_dict", problem,
                                "Models load with a private copy of every weight.")
    else:
        def _load_from_state_dict(self, state_dict, prefix, local_metadata, *args, **kwargs):
            adoption = active()
            if adoption is not None:
                adoption.adopt_into(self, state_dict, prefix, local_metadata)
            return original(self, state_dict, prefix, local_metadata, *args, **kwargs)
        torch.nn.Module._load_from_state_dict = _load_from_state_dict
        undos.append(lambda: setattr(torch.nn.Module, "_load_from_state_dict", original))

    # ComfyUI 0.33 with DynamicVRAM: adopted models get the classic patcher,
    # and layers that load lazily still adopt (dynamic_vram.py).
    undos.extend(dynamic_vram.install(active))

    # A model ComfyUI half-builds (skeleton) or still adopts must not be
    # loaded to a device from inside its own loader.
    load_models_gpu = getattr(mm, "load_models_gpu", None)
    if callable(load_models_gpu):
        def guarded_load_models_gpu(*args, **kwargs):
            if active() is not None:
                logger.debug("distorch: deferring load_models_gpu during adoption")
                return None
            return load_models_gpu(*args, **kwargs)
        undos.append(patches._replace(mm, "load_models_gpu", guarded_load_models_gpu))
    return undos


def run_skeleton(run: Callable[[], object], options: LoadOptions) -> Tuple[str, ...]:
    """Pins for the planner: from a skeleton pass when it works, else from
    tensor names."""
    adoption = Adoption(mode="skeleton", options=options)
    try:
        with adopting(adoption):
            run()
        return adoption.skeleton_pins()
    except Exception as e:  # ComfyUI code that reads values cannot run on meta
        logger.debug("distorch: skeleton pass failed (%r); pinning by tensor names", e)
        return heuristic_pins(adoption.paths)
