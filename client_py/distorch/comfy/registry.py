"""What this ComfyUI process loaded through the broker, and its keep flags.

An Entry is one loader-node result: the broker models (leases) it loaded, the
ComfyUI objects built on them, and the node's keep_loaded flag.

  - keep_loaded=true entries are held strongly here, so they survive
    ComfyUI's executor reset in the /free flow and the next run of the same
    node gets the very same objects back (no reload);
  - keep_loaded=false entries live as long as ComfyUI references them; when
    the torch models die, their leases are released (on a worker thread, never
    inside garbage collection);
  - `eject_unflagged` (the /free unload step) releases every unflagged lease
    of this session with one broker Free, turns the models' tensors into meta
    tensors (so the process unmaps the memory) and bumps the node's
    generation, which its IS_CHANGED reports, so ComfyUI runs the node again
    next time instead of reusing the ejected model.

Thread-safe: one lock guards the tables.
"""

from __future__ import annotations

import hashlib
import json
import logging
import queue
import threading
import weakref
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from . import patcher as patcher_mod
from . import session

logger = logging.getLogger(__name__)


@dataclass(eq=False)
class Entry:
    load_key: str                    # what decides the residency (inputs without keep)
    name: str
    loaded: List[Tuple[str, object]]  # (path, distorch LoadedModel)
    keep: bool
    outputs_ref: List[object]        # weakrefs to the node's outputs
    strong: Optional[tuple] = None   # the outputs, while keep is on
    holders: set = field(default_factory=set)  # node ids using it
    roots_alive: int = 0
    ejected: bool = False
    evicted: bool = False

    def outputs(self) -> Optional[tuple]:
        objs = tuple(r() for r in self.outputs_ref)
        return None if any(o is None for o in objs) else objs

    def model_ids(self) -> List[int]:
        return [getattr(m, "model_id", 0) for _, m in self.loaded]


def _weak(obj):
    try:
        return weakref.ref(obj)
    except TypeError:  # e.g. a plain tuple output: keep it (no broker state in it)
        return lambda: obj


def inputs_hash(node_type: str, inputs: Dict[str, object]) -> str:
    clean = {k: v for k, v in inputs.items() if k != "unique_id"}
    text = json.dumps([node_type, clean], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def roots_of(outputs: tuple) -> List[object]:
    """The ComfyUI patchers inside a loader node's outputs."""
    found = []
    for out in outputs:
        for candidate in (out, getattr(out, "patcher", None), getattr(out, "control_model_wrapped", None)):
            if candidate is not None and hasattr(candidate, "model") and hasattr(candidate, "load_device") \
                    and all(candidate is not f for f in found):
                found.append(candidate)
    return found


_STOP = object()  # ends a release worker (tests re-initialise the registry)


class Registry:
    def __init__(self) -> None:
        previous = getattr(self, "_releases", None)
        if previous is not None:
            previous.put(_STOP)  # re-initialised (tests): the old worker ends after its queue
        self._lock = threading.Lock()
        self._entries: Dict[str, Entry] = {}
        self._generation: Dict[str, int] = {}
        self._node_key: Dict[str, str] = {}
        # Entries whose models died, and drain()'s markers, in order. A SimpleQueue
        # because _root_died runs inside garbage collection: its put() is reentrant.
        self._releases: "queue.SimpleQueue[object]" = queue.SimpleQueue()
        self._worker: Optional[threading.Thread] = None
        self._worker_starting = threading.Lock()

    # -- node side ----------------------------------------------------------
    def change_token(self, node_type: str, inputs: Dict[str, object]) -> str:
        """IS_CHANGED value: the inputs, a generation bumped on eject, and the
        broker connection (so a daemon that appeared or restarted since the
        last run makes ComfyUI run the node again, through it)."""
        h = inputs_hash(node_type, inputs)
        connection = session.connection_identity()
        with self._lock:
            return f"{h}:{self._generation.get(h, 0)}:{connection}"

    def lookup(self, load_key: str) -> Optional[Entry]:
        with self._lock:
            entry = self._entries.get(load_key)
        if entry is None or entry.ejected or entry.evicted or entry.outputs() is None:
            return None
        return entry

    def reuse(self, entry: Entry, keep: bool, node_id: Optional[str]) -> tuple:
        outputs = entry.outputs()
        self._hold(entry, keep, node_id, outputs)
        return outputs

    def register(self, load_key: str, name: str, loaded, outputs: tuple, keep: bool,
                 node_id: Optional[str], input_hash: str) -> Entry:
        entry = Entry(load_key=load_key, name=name, loaded=list(loaded), keep=keep,
                      outputs_ref=[_weak(o) for o in outputs])
        entry.input_hash = input_hash  # type: ignore[attr-defined]
        roots = {id(p.model): p.model for p in roots_of(outputs)}
        entry.roots_alive = len(roots)
        for root in roots.values():
            weakref.finalize(root, self._root_died, entry).atexit = False
        with self._lock:
            old = self._entries.get(load_key)
            self._entries[load_key] = entry
        if old is not None and old is not entry and not old.ejected:
            old.strong = None
        self._hold(entry, keep, node_id, outputs)
        return entry

    def _hold(self, entry: Entry, keep: bool, node_id: Optional[str], outputs: tuple) -> None:
        # A node id is not an identity across prompts: ComfyUI numbers every
        # workflow's nodes from 1, so "node 1 now loads something else" is as
        # often another workflow as a changed input. A kept entry therefore stays
        # held until its own node runs with keep_loaded off (then /free ejects
        # it), an operator frees it, or the session ends.
        with self._lock:
            if node_id is not None:
                previous = self._entries.get(self._node_key.get(node_id, ""))
                if previous is not None and previous is not entry:
                    previous.holders.discard(node_id)
                self._node_key[node_id] = entry.load_key
                entry.holders.add(node_id)
            changed = entry.keep != keep
            entry.keep = keep
            entry.strong = outputs if keep else None
        if changed:
            c = session.current()
            for _, loaded in entry.loaded:
                try:
                    c.set_keep_loaded(loaded, keep) if c is not None else None
                except Exception as e:
                    logger.warning("distorch: could not set keep_loaded=%s on %s: %s", keep, entry.name, e)
            logger.info("distorch: %s keep_loaded=%s", entry.name, keep)

    # -- /free ----------------------------------------------------------------
    def is_kept(self, model_patcher: object) -> bool:
        placement = getattr(getattr(model_patcher, "model", None), patcher_mod.PLACEMENT_ATTR, None)
        entry = getattr(placement, "entry", None)
        return bool(entry is not None and entry.keep and not entry.ejected)

    def eject_unflagged(self) -> int:
        with self._lock:
            unflagged = [e for e in self._entries.values() if not e.keep and not e.ejected]
        if not unflagged:
            return 0  # strict no-op: no broker call
        c = session.current()
        released = None
        if c is not None:
            try:
                released = c.free(unload_models=True, free_memory=False)
            except Exception as e:
                logger.warning("distorch: broker Free failed (%s); releasing one by one", e)
        for entry in unflagged:
            self._eject(entry, release=released is None)
        names = ", ".join(e.name for e in unflagged)
        logger.info("distorch: ejected %d model(s) with keep_loaded=false: %s", len(unflagged), names)
        return len(unflagged)

    def _eject(self, entry: Entry, release: bool) -> None:
        with self._lock:
            if entry.ejected:
                return
            entry.ejected = True
            entry.strong = None
            h = getattr(entry, "input_hash", None)
            if h is not None:
                self._generation[h] = self._generation.get(h, 0) + 1
            for key in [k for k, e in self._entries.items() if e is entry]:
                del self._entries[key]
        outputs = [r() for r in entry.outputs_ref]
        for p in roots_of(tuple(o for o in outputs if o is not None)):
            p.backup.clear()
            patcher_mod.drop_tensors(p.model)
        for _, loaded in entry.loaded:
            try:
                (loaded.release if release else loaded.close)()
            except Exception as e:
                logger.debug("distorch: closing %s: %r", entry.name, e)

    def on_evicted(self, model_id: int) -> None:
        """distorchctl evicted one of our models: never hand it out again."""
        with self._lock:
            hits = [e for e in self._entries.values() if model_id in e.model_ids()]
            for e in hits:
                e.evicted = True
                e.strong = None
                h = getattr(e, "input_hash", None)
                if h is not None:
                    self._generation[h] = self._generation.get(h, 0) + 1
        for e in hits:
            logger.warning("distorch: %s was evicted by an operator; the next run reloads it", e.name)

    # -- lifetime -------------------------------------------------------------
    def _root_died(self, entry: Entry) -> None:
        entry.roots_alive -= 1
        if entry.roots_alive <= 0 and not entry.ejected:
            self._releases.put(entry)
            self._start_worker()

    def _start_worker(self) -> None:
        # One worker, started on the first release; it then waits on the queue for
        # good (a worker that exits when idle can miss an entry put while it exits).
        # Called inside garbage collection: never block on a lock here.
        if self._worker is not None and self._worker.is_alive():
            return
        if not self._worker_starting.acquire(blocking=False):
            return  # another caller is starting it; it will find our entry
        try:
            if self._worker is None or not self._worker.is_alive():
                worker = threading.Thread(target=self._release_loop, args=(self._releases,),
                                          name="distorch-release", daemon=True)
                worker.start()
                self._worker = worker
        finally:
            self._worker_starting.release()

    def _release_loop(self, releases: "queue.SimpleQueue[object]") -> None:
        while True:
            item = releases.get()
            if item is _STOP:
                return
            if isinstance(item, threading.Event):
                item.set()  # drain(): everything queued before it is done
                continue
            try:
                self._release(item)
            except Exception:
                logger.exception("distorch: releasing %s failed", getattr(item, "name", item))

    def _release(self, entry: Entry) -> None:
        with self._lock:
            if entry.ejected:
                return
            entry.ejected = True
            for key in [k for k, e in self._entries.items() if e is entry]:
                del self._entries[key]
        for _, loaded in entry.loaded:
            try:
                loaded.release()
            except Exception as e:
                logger.debug("distorch: releasing %s: %r", entry.name, e)
        logger.info("distorch: released %s (ComfyUI no longer uses it)", entry.name)

    def drain(self, timeout: float = 5.0) -> None:
        """Tests: returns once every release queued before the call is done
        (the broker calls included); TimeoutError after `timeout` seconds."""
        done = threading.Event()
        self._releases.put(done)
        self._start_worker()
        if not done.wait(timeout):
            raise TimeoutError(f"distorch: queued releases not done after {timeout:g} s")

    def entries(self) -> List[Entry]:
        with self._lock:
            return list(self._entries.values())


REGISTRY = Registry()
