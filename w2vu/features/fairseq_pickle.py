"""fairseq checkpoints unpickled without trusting the pickle.

A fairseq checkpoint is a pickle: loading it the usual way runs whatever callable the file names.
Here the one restricted unpickler (``w2vu.io.pickles``) resolves only what a checkpoint
legitimately holds (containers, tensors, `argparse.Namespace`) and turns omegaconf/fairseq config
objects into inert stand-ins that are read back as plain dicts, lists and strings. Anything else
is refused before it can run.
"""

from __future__ import annotations

import argparse
import enum
import importlib
import os
import pickle
import re
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from w2vu.errors import W2vuError
from w2vu.io.pickles import IMPORT, pickle_module, restricted
from w2vu.io.torch_files import load_failure


class _StandIn:
    """Inert placeholder for a fairseq/omegaconf class: it records what the pickle gives it."""

    _w2vu_name = "?"

    def __new__(cls, *args: Any, **kwargs: Any) -> _StandIn:
        obj = super().__new__(cls)
        obj._w2vu_args = args
        obj._w2vu_state = None
        return obj

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            merged = dict(state[0] or {})
            merged.update(state[1] or {})
            state = merged
        self._w2vu_state = state

    def __class_getitem__(cls, item: Any) -> type[_StandIn]:  # typing.Dict[str, Any] etc.
        return cls

    def to_plain(self) -> Any:
        """The content as plain Python: DictConfig → dict, ListConfig → list, node → value."""
        state = self._w2vu_state if isinstance(self._w2vu_state, dict) else {}
        if "_content" in state:
            return to_plain(state["_content"])
        if "_val" in state:
            return to_plain(state["_val"])
        if self._w2vu_args and not state:  # an enum member pickled as Class(value)
            args = [to_plain(a) for a in self._w2vu_args]
            return args[0] if len(args) == 1 else args
        if state:  # a fairseq dataclass instance: its fields
            return {k: to_plain(v) for k, v in state.items() if not str(k).startswith("_")}
        return None


_STANDIN_CLASSES: dict[str, type[_StandIn]] = {}


def _standin_class(qualified: str) -> type[_StandIn]:
    """One stand-in class per pickled name, so that isinstance checks stay cheap."""
    if qualified not in _STANDIN_CLASSES:
        name = qualified.rsplit(".", 1)[-1]
        _STANDIN_CLASSES[qualified] = type(name, (_StandIn,), {"_w2vu_name": qualified})
    return _STANDIN_CLASSES[qualified]


def _typing_subscript(origin: Any, args: Any) -> Any:
    """Stand-in for `operator.getitem` as pickled by `typing.Dict[str, Any]`: a type annotation."""
    return _standin_class("typing.<subscripted>")


# Modules whose classes are replaced by inert stand-ins (config objects, type annotations).
_STANDIN_MODULES = ("omegaconf", "fairseq", "typing")

_BUILTINS = frozenset({
    "dict", "list", "tuple", "set", "frozenset", "bytes", "bytearray", "str", "int", "float",
    "complex", "bool", "slice", "object", "range",
})
_NUMPY = {  # numpy scalars and arrays turn up in fairseq's extra_state (e.g. best loss)
    ("numpy.core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"): ("numpy._core.multiarray", "scalar"),
    ("numpy.core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "dtype"): ("numpy", "dtype"),
    ("numpy", "ndarray"): ("numpy", "ndarray"),
}
_DTYPE_NAME = re.compile(r"^[A-Za-z0-9]+DType$")
_OTHER = {
    ("collections", "OrderedDict"), ("collections", "Counter"), ("collections", "defaultdict"),
    ("argparse", "Namespace"), ("copyreg", "_reconstructor"), ("_codecs", "encode"),
}


def _torch_globals() -> dict[str, Any]:
    """The tensor-rebuilding globals torch itself trusts for `weights_only` loading."""
    try:
        from torch import _weights_only_unpickler

        return dict(_weights_only_unpickler._get_allowed_globals())
    except (ImportError, AttributeError):  # a torch without the private helper: the essentials
        import torch._utils as tu

        names = ("_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_parameter",
                 "_rebuild_parameter_with_state")
        found = {f"torch._utils.{n}": getattr(tu, n) for n in names if hasattr(tu, n)}
        found.update({"torch.Size": torch.Size, "torch.device": torch.device})
        return found


_allowed_torch: dict[str, Any] = {}


def _resolve(module: str, name: str) -> Any:
    """What a model checkpoint legitimately holds: containers, tensors, numpy values,
    ``argparse.Namespace``; omegaconf/fairseq/typing objects become inert stand-ins."""
    qualified = f"{module}.{name}"
    if module.split(".")[0] in _STANDIN_MODULES:
        return _standin_class(qualified)
    if module in ("operator", "_operator") and name == "getitem":
        return _typing_subscript
    if (module == "builtins" and name in _BUILTINS) or (module, name) in _OTHER:
        return IMPORT
    if (module, name) in _NUMPY or (module == "numpy.dtypes" and _DTYPE_NAME.match(name)):
        target_module, target = _NUMPY.get((module, name), (module, name))
        return getattr(importlib.import_module(target_module), target)
    if module.split(".")[0] == "torch":
        if not _allowed_torch:
            _allowed_torch.update(_torch_globals())
        return _allowed_torch.get(qualified)
    return None


def _refusal(source: str) -> Callable[[str], Exception]:
    return lambda qualified: W2vuError(
        f"refusing to load {source}: it asks to run {qualified}, which a checkpoint never needs "
        "(the file is corrupt or malicious; get the model from its original publisher)")


def _is_torchscript(path: Path) -> bool:
    """TorchScript archives would be handed to torch.jit.load, which runs their code."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        return any(n.endswith("/constants.pkl") or n == "constants.pkl" for n in zf.namelist())


def safe_load(path: str | os.PathLike) -> Any:
    """Unpickle a torch checkpoint with the restricted unpickler (weights on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise W2vuError(f"{path}: no such checkpoint file (check the path in the config)")
    if _is_torchscript(path):
        raise W2vuError(f"refusing to load {path}: it is a TorchScript archive, not a fairseq "
                        "checkpoint (pass the original fairseq .pt or a Hugging Face folder)")
    try:
        return torch.load(path, map_location="cpu", weights_only=False,
                          pickle_module=pickle_module(restricted(_resolve, _refusal(str(path)))))
    except W2vuError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, zipfile.BadZipFile) as e:
        raise W2vuError(f"{path}: not a readable torch checkpoint ({load_failure(e)}); "
                        "re-download it") from e


def to_plain(obj: Any) -> Any:
    """Config objects (Namespace, stand-ins, enums, OrderedDicts) as plain dicts/lists/values."""
    if isinstance(obj, _StandIn):
        return obj.to_plain()
    if isinstance(obj, argparse.Namespace):
        return {k: to_plain(v) for k, v in vars(obj).items()}
    if isinstance(obj, enum.Enum):
        return to_plain(obj.value)
    if isinstance(obj, Mapping):
        return {k: to_plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_plain(v) for v in obj]
    if isinstance(obj, str) and obj == "???":  # omegaconf's MISSING
        return None
    return obj
