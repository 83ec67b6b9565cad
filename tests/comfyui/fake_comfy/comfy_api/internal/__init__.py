"""The helpers ComfyUI's executor uses on V3 nodes.

Each mirrors the function of the same name in ComfyUI 0.33.0
comfy_api/internal/__init__.py (names, arguments and behaviour; not its code).
"""

from __future__ import annotations

from typing import Callable, Optional


class _ComfyNodeInternal:
    """Base of every V3 node class: execution.py and server.py test
    `issubclass(cls, _ComfyNodeInternal)` to pick the V3 path (0.33.0)."""

    @classmethod
    def GET_NODE_INFO_V1(cls):
        ...


class _NodeOutputInternal:
    """Base of a V3 node's return value (io.NodeOutput) (0.33.0)."""


def prune_dict(d: dict) -> dict:
    return {k: v for k, v in d.items() if v is not None}


def is_class(obj) -> bool:
    return isinstance(obj, type)


class classproperty:
    """A read-only property on the class (0.33.0: V3 nodes expose FUNCTION,
    CATEGORY, RETURN_TYPES ... this way)."""

    def __init__(self, f: Callable) -> None:
        self.f = f

    def __get__(self, obj, owner):
        return self.f(owner)


def first_real_override(cls: type, name: str, *, base: Optional[type] = None) -> Optional[Callable]:
    """`name` bound to cls when a class between cls and base (ComfyNode)
    redefines it, else None: how 0.33.0 decides whether a V3 node has
    fingerprint_inputs / validate_inputs / check_lazy_status of its own."""
    base = base if base is not None else cls.GET_BASE_CLASS()
    placeholder = getattr(base, name, None)
    if placeholder is None:
        return None
    for klass in cls.mro():
        if klass is base:
            break
        if name in vars(klass):
            if getattr(klass, name).__func__ is not placeholder.__func__:
                return getattr(cls, name)
    return None


def shallow_clone_class(cls: type, new_name: Optional[str] = None) -> type:
    """A subclass of cls with a copy of its namespace, named '<cls>Clone' (0.33.0)."""
    return type(new_name or f"{cls.__name__}Clone", (cls,) + cls.__bases__, dict(cls.__dict__))


def lock_class(cls: type) -> type:
    """cls rebuilt under a metaclass that refuses attribute writes (0.33.0):
    a V3 node's execute() cannot store state on its class."""

    class LockedMeta(type(cls)):
        def __setattr__(klass, name, value):
            raise AttributeError(f"Cannot modify class attribute '{name}' on locked class "
                                 f"'{klass.__name__}'")

    def locked_setattr(self, name, value):
        raise AttributeError(f"Cannot set attribute '{name}' on immutable instance of "
                             f"{type(self).__name__}")

    namespace = dict(cls.__dict__)
    namespace["__setattr__"] = locked_setattr
    return LockedMeta(cls.__name__, cls.__bases__, namespace)


def make_locked_method_func(type_obj: type, func: str, class_clone: type) -> Callable:
    """What execution.py calls for a V3 node: the classmethod `func` of
    type_obj with the locked clone (which carries `hidden`) as cls (0.33.0)."""
    locked = lock_class(class_clone)
    method = getattr(type_obj, func).__func__

    def call(**inputs):
        return method(locked, **inputs)
    return call
