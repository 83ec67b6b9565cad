"""Import stubs for run_real.sh ONLY (never used by distorch itself).

ComfyUI imports some packages that Debian does not package. When
DISTORCH_IMPORT_STUBS names them (comma-separated), an import of one that is
really missing gets a stub module; each stub says on stderr, once, that it
was stubbed, and raises if the tested flow ever calls into it. Packages that
are installed are never stubbed (this finder runs after the real ones).

Two shapes ComfyUI 0.33's imports need from comfy_kitchen (its optional kernels):
a stub's `*_is_available()` answers False, and the submodules in _ABSENT are
missing (ImportError), so ComfyUI takes its own no-kernels fallback."""

import importlib.abc
import importlib.machinery
import os
import sys
import types

_NAMES = {n.strip() for n in os.environ.get("DISTORCH_IMPORT_STUBS", "").split(",") if n.strip()}
_REPORTED = set()
_ABSENT = {"comfy_kitchen.tensor"}


def _unavailable(*args, **kwargs):
    return False


class _StubMeta(type):
    def __getattr__(cls, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return _stub_class(f"{cls.__qualname__}.{name}")


def _stub_class(qualname):
    def _fail(*args, **kwargs):
        raise RuntimeError(f"run_real.sh import stub: {qualname} is not installed here "
                           "and the tested flow was not expected to use it")
    return _StubMeta(qualname.rsplit(".", 1)[-1], (object,), {
        "__qualname__": qualname, "__init__": _fail, "__call__": _fail,
        "__init_subclass__": classmethod(lambda cls, **kw: None)})


class _StubModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        if name.endswith("_is_available"):
            return _unavailable
        value = _stub_class(f"{self.__name__}.{name}")
        setattr(self, name, value)
        return value


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] not in _NAMES or fullname in _ABSENT:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        module = _StubModule(spec.name)
        module.__path__ = []
        module.__version__ = "0.0.0+distorch-stub"
        return module

    def exec_module(self, module):
        top = module.__name__.split(".")[0]
        if top not in _REPORTED:
            _REPORTED.add(top)
            sys.stderr.write(f"[run_real.sh] STUBBED missing package '{top}' (import stub)\n")


def _roberta_cls_fix():
    """Debian sid's python3-transformers 5.12 calls tokenizers' RobertaProcessing(sep=...,
    cls=...), which python3-tokenizers 0.23 names (sep, cls_token): CLIP's tokenizer
    cannot be built. Debian's mismatch, not ComfyUI's or ours; mapped here for the run."""
    try:
        from tokenizers import processors
        original = processors.RobertaProcessing
        original(sep=("</s>", 2), cls=("<s>", 0))
    except TypeError:
        def RobertaProcessing(*args, cls=None, **kwargs):
            if cls is not None:
                kwargs["cls_token"] = cls
            return original(*args, **kwargs)
        RobertaProcessing.__doc__ = original.__doc__
        processors.RobertaProcessing = RobertaProcessing
    except Exception:
        pass


if _NAMES:
    _roberta_cls_fix()  # before the stubs: only a real tokenizers is patched
    sys.meta_path.append(_Finder())
