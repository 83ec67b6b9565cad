"""ComfyUI-MultiGPU's node names, served by distorch.

A MultiGPU user's saved workflow names nodes like `UNETLoaderDisTorch2MultiGPU`
with MultiGPU's inputs. This package registers those names with the same
inputs and defaults (read from ComfyUI-MultiGPU 2.6.3) and loads through
distorchd: each is a twin of the stock (or ComfyUI-GGUF) loader it wraps, and
its inputs become a compute device, an allocation string and keep_loaded.

  table.py         MultiGPU name -> base loader, input family, device kind
  families.py      the input families (names, types, ranges, defaults)
  translate.py     a family's inputs -> BrokerRequest (pure)
  request.py       one node run: split inputs, log, nodes.run_broker
  loaders.py       V1 and V3 loader twins
  checkpoint.py    CheckpointLoaderAdvanced{,DisTorch2}MultiGPU
  selector.py      DeviceSelectorMultiGPU, UNetLoaderLP
  packs.py         third-party packs' MultiGPU names (device selection)
  wanvideo.py      ComfyUI-WanVideoWrapper's twenty MultiGPU names (device selection)
  extra_devices.py vae_device / unet_offload_device per thread
  coexist.py       who owns the names when ComfyUI-MultiGPU is installed too
"""

from __future__ import annotations

import logging
from types import ModuleType
from typing import Dict, List, Tuple

from . import checkpoint, coexist, extra_devices, loaders, packs, selector, wanvideo
from .table import CORE_LOADERS, GGUF_LOADERS

logger = logging.getLogger(__name__)


def build(stock_mappings: Dict[str, type], mm: ModuleType) -> Tuple[Dict[str, type], List]:
    """({MultiGPU node name: class}, undos) for this ComfyUI; no names while
    ComfyUI-MultiGPU is installed (coexist.py)."""
    where = coexist.installed_multigpu(stock_mappings)
    if where is not None:
        coexist.log_owner(where)
        return {}, []
    classes: Dict[str, type] = {}
    for entry in CORE_LOADERS:
        stock_cls = stock_mappings.get(entry.base)
        if stock_cls is not None:
            classes[entry.name] = loaders.make_node(stock_cls, entry)
    ckpt = stock_mappings.get("CheckpointLoaderSimple")
    if ckpt is not None:
        classes["CheckpointLoaderAdvancedMultiGPU"] = checkpoint.make_advanced(ckpt)
        classes["CheckpointLoaderAdvancedDisTorch2MultiGPU"] = checkpoint.make_advanced_distorch2(ckpt)
    classes["DeviceSelectorMultiGPU"] = selector.make_device_selector()
    unet = stock_mappings.get("UNETLoader")
    if unet is not None:
        classes["UNetLoaderLP"] = selector.make_unet_loader_lp(unet)
    pack_classes, found = _pack_names(stock_mappings)
    classes.update(pack_classes)
    gguf = sum(1 for e in GGUF_LOADERS if e.name in classes)
    logger.info("distorch: %d ComfyUI-MultiGPU node names registered (%d GGUF%s)", len(classes), gguf,
                f"; packs: {', '.join(found)}" if found else "")
    return classes, extra_devices.install(mm)


def _pack_names(stock_mappings: Dict[str, type]) -> Tuple[Dict[str, type], List[str]]:
    """The names over custom-node packs' nodes (ComfyUI-GGUF, WanVideoWrapper
    and the others in packs.py) whose nodes are in stock_mappings."""
    classes: Dict[str, type] = {}
    for entry in GGUF_LOADERS:
        stock_cls = stock_mappings.get(entry.base)
        if stock_cls is not None:
            classes[entry.name] = loaders.make_node(stock_cls, entry)
    found = ["ComfyUI-GGUF"] if classes else []
    pack_classes, pack_found = packs.build(stock_mappings)
    classes.update(pack_classes)
    found += pack_found
    wan = wanvideo.build(stock_mappings)
    if wan:
        classes.update(wan)
        found.append(wanvideo.PACK)
    return classes, found


def build_late(added: Dict[str, type], all_mappings: Dict[str, type]) -> Dict[str, type]:
    """The names over the nodes a pack loaded after distorch added (`added`);
    none while ComfyUI-MultiGPU is installed (all_mappings: ComfyUI's now)."""
    where = coexist.installed_multigpu(all_mappings)
    if where is not None:
        coexist.log_owner(where)
        return {}
    classes, _ = _pack_names(added)
    return classes
