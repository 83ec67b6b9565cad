"""The input families ComfyUI-MultiGPU adds to the loaders it wraps.

Written from ComfyUI-MultiGPU 2.6.3 `wrappers.py` (names, types, ranges,
defaults, categories and display suffixes) so a saved MultiGPU workflow finds
the same widgets in the same order:

  device          override_class: `device`
  device_clip     override_class_clip / _clip_no_device: `device` (replaces
                  the stock CLIP loaders' own `device` option in place)
  distorch2       override_class_with_distorch_safetensor_v2: compute_device,
                  virtual_vram_gb (4.0, 0-128), donor_device (cpu),
                  expert_mode_allocations, eject_models (True)
  distorch2_clip  the _clip variants: `device` instead of compute_device and
                  eject_models False
  legacy(_clip)   override_class_with_distorch_gguf / _clip (DisTorch v1):
                  device, virtual_vram_gb (4.0, 0-24), use_other_vram (False),
                  expert_mode_allocations

A device combo lists "cpu" first, then the broker's other devices, and
defaults to the second entry (the first accelerator) as MultiGPU's
get_device_list()/`devices[1]` rule does. Every added input is optional.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

DEVICES = "DEVICES"  # a combo of the device list


@dataclass(frozen=True)
class InputSpec:
    name: str
    type: str                    # DEVICES, FLOAT, STRING, BOOLEAN
    default: object = None       # None on a DEVICES input: the first accelerator
    min: Optional[float] = None
    max: Optional[float] = None
    step: Optional[float] = None


@dataclass(frozen=True)
class Family:
    name: str
    inputs: Tuple[InputSpec, ...]
    category: str
    device_input: str            # the input that names the compute device

    def input_names(self) -> List[str]:
        return [i.name for i in self.inputs]


def _distorch2(device_input: str, eject_default: bool) -> Tuple[InputSpec, ...]:
    return (InputSpec(device_input, DEVICES),
            InputSpec("virtual_vram_gb", "FLOAT", 4.0, 0.0, 128.0, 0.1),
            InputSpec("donor_device", DEVICES, "cpu"),
            InputSpec("expert_mode_allocations", "STRING", ""),
            InputSpec("eject_models", "BOOLEAN", eject_default))


_LEGACY = (InputSpec("device", DEVICES),
           InputSpec("virtual_vram_gb", "FLOAT", 4.0, 0.0, 24.0, 0.1),
           InputSpec("use_other_vram", "BOOLEAN", False),
           InputSpec("expert_mode_allocations", "STRING", ""))

FAMILIES: Dict[str, Family] = {f.name: f for f in (
    Family("device", (InputSpec("device", DEVICES),), "multigpu", "device"),
    Family("device_clip", (InputSpec("device", DEVICES),), "multigpu", "device"),
    Family("distorch2", _distorch2("compute_device", True), "multigpu/distorch_2", "compute_device"),
    Family("distorch2_clip", _distorch2("device", False), "multigpu/distorch_2", "device"),
    Family("legacy", _LEGACY, "multigpu/legacy", "device"),
    Family("legacy_clip", _LEGACY, "multigpu", "device"),
)}


def device_choices(names: List[str]) -> Tuple[List[str], str]:
    """(combo options, default) in MultiGPU's order: cpu first."""
    choices = ["cpu"] + [n for n in names if n != "cpu"]
    return choices, (choices[1] if len(choices) > 1 else choices[0])


def _v1_spec(spec: InputSpec, choices: List[str], default_device: str) -> tuple:
    if spec.type == DEVICES:
        return (list(choices), {"default": spec.default or default_device})
    opts: Dict[str, object] = {"default": spec.default}
    if spec.type == "FLOAT":
        opts.update(min=spec.min, max=spec.max, step=spec.step)
    if spec.type == "STRING":
        opts = {"multiline": False, "default": spec.default}
    return (spec.type, opts)


def add_v1_inputs(stock_inputs: dict, family: Family, names: List[str]) -> dict:
    """The stock INPUT_TYPES with the family's inputs set in `optional` (a
    stock input of the same name is replaced where it stands, as MultiGPU's
    dict assignment does)."""
    inputs = copy.deepcopy(stock_inputs)
    choices, default_device = device_choices(names)
    optional = inputs.setdefault("optional", {})
    for spec in family.inputs:
        optional[spec.name] = _v1_spec(spec, choices, default_device)
    return inputs


def v3_inputs(io, family: Family, names: List[str]) -> list:
    """The family's inputs as comfy_api io inputs (all optional)."""
    choices, default_device = device_choices(names)
    out = []
    for spec in family.inputs:
        if spec.type == DEVICES:
            out.append(io.Combo.Input(spec.name, options=list(choices),
                                      default=spec.default or default_device, optional=True))
        elif spec.type == "FLOAT":
            out.append(io.Float.Input(spec.name, default=spec.default, min=spec.min, max=spec.max,
                                      step=spec.step, optional=True))
        elif spec.type == "STRING":
            out.append(io.String.Input(spec.name, multiline=False, default=spec.default, optional=True))
        else:
            out.append(io.Boolean.Input(spec.name, default=spec.default, optional=True))
    return out


def defaults(family: Family, names: List[str]) -> Dict[str, object]:
    """The value of every family input when a prompt leaves it out."""
    _, default_device = device_choices(names)
    return {s.name: (s.default if s.default is not None or s.type != DEVICES else default_device)
            for s in family.inputs}
