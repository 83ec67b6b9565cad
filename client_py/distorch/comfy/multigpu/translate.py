"""A MultiGPU node's inputs -> what distorch asks the broker for.

Pure functions (no ComfyUI, no daemon), so each rule has a unit test. The
meaning of each input is ComfyUI-MultiGPU 2.6.3's (`wrappers.py`,
`checkpoint_multigpu.py`, `distorch_2.py`):

- device-only nodes: the whole model on `device` (allocation "": everything on
  the compute device);
- DisTorch2: a non-empty `expert_mode_allocations` wins and is passed to
  distorchd as written (every form docs/allocation-strings.md lists,
  MultiGPU's `EXPERT#COMPUTE;GB;DONORS` and `compute;gb;donor,donor` among
  them); else `virtual_vram_gb` > 0 moves that much to `donor_device`
  (our virtual VRAM form); else the whole model on the compute device;
  `eject_models` is distorch's keep_loaded inverted;
- legacy DisTorch v1: as DisTorch2, the donors being every other accelerator
  then cpu with `use_other_vram`, else cpu; no eject input (keep_loaded off).

A donor that is the compute device moves nothing (MultiGPU's CPU-only default,
compute cpu and donor cpu, is valid there): the model stays whole on the
compute device and the note says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence


@dataclass(frozen=True)
class BrokerRequest:
    compute: str
    allocation: str           # "" = everything on compute
    keep_loaded: bool
    multigpu_string: str      # what MultiGPU logged as "Full allocation string"
    note: str = ""


def _gb(value) -> float:
    return float(value or 0.0)


def multigpu_full_allocation(compute: str, virtual_vram_gb: float, donors: str, expert: str) -> str:
    """MultiGPU's `EXPERT#COMPUTE;GB;DONORS` for the same inputs ("" when it
    would not split the model), for the log line users compare with. An expert
    string that is already that logged form is returned as it is."""
    if "#" in expert:
        return expert
    vram = ""
    if virtual_vram_gb > 0:
        vram = f"{compute};{virtual_vram_gb};{donors}"
    elif expert:
        vram = compute
    return f"{expert}#{vram}" if expert or vram else ""


def _virtual_vram(compute: str, gb: float, donors: Sequence[str], expert: str,
                  keep: bool) -> BrokerRequest:
    full = multigpu_full_allocation(compute, gb, ",".join(donors), expert)
    if expert:
        return BrokerRequest(compute, expert, keep, full)
    if gb <= 0:
        return BrokerRequest(compute, "", keep, full)
    others = [d for d in donors if d != compute]
    if not others:
        return BrokerRequest(compute, "", keep, full,
                             f"the donor is the compute device {compute}: nothing to move, "
                             f"the whole model stays on {compute}")
    return BrokerRequest(compute, f"compute={compute}, virtual_vram_gb={gb:g}, donors={','.join(others)}",
                         keep, full)


def device_only(device: str) -> BrokerRequest:
    return BrokerRequest(device, "", False, "")


def distorch2(compute: str, virtual_vram_gb, donor_device: str, expert: str,
              eject_models: bool) -> BrokerRequest:
    return _virtual_vram(compute, _gb(virtual_vram_gb), [donor_device or "cpu"],
                         (expert or "").strip(), not eject_models)


def legacy_donors(device: str, use_other_vram: bool, device_names: Sequence[str]) -> List[str]:
    """DisTorch v1's donors: every other accelerator, then cpu (use_other_vram),
    or cpu alone."""
    if not use_other_vram:
        return ["cpu"]
    return [n for n in device_names if n not in ("cpu", device)] + ["cpu"]


def legacy(device: str, virtual_vram_gb, use_other_vram: bool, expert: str,
           device_names: Sequence[str]) -> BrokerRequest:
    donors = legacy_donors(device, bool(use_other_vram), device_names)
    return _virtual_vram(device, _gb(virtual_vram_gb), donors, (expert or "").strip(), False)


def for_family(family: str, values: dict, device_names: Sequence[str]) -> BrokerRequest:
    """The request for one node's family inputs (values holds every one of
    them, defaults filled in)."""
    if family in ("device", "device_clip"):
        return device_only(values["device"])
    if family == "distorch2":
        return distorch2(values["compute_device"], values["virtual_vram_gb"], values["donor_device"],
                         values["expert_mode_allocations"], values["eject_models"])
    if family == "distorch2_clip":
        return distorch2(values["device"], values["virtual_vram_gb"], values["donor_device"],
                         values["expert_mode_allocations"], values["eject_models"])
    if family in ("legacy", "legacy_clip"):
        return legacy(values["device"], values["virtual_vram_gb"], values["use_other_vram"],
                      values["expert_mode_allocations"], device_names)
    raise ValueError(f"distorch: unknown MultiGPU input family {family!r}")
