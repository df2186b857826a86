"""The one restricted unpickler: a pickle is read only when every global it names is on the
reader's allow-list, so no code a file names can run while it loads. Each file format brings its
own list (the HMM model file, fairseq checkpoints); the refusal happens before anything runs."""

from __future__ import annotations

import _compat_pickle
import io
import pickle
import types
from collections.abc import Callable
from typing import Any

Resolve = Callable[[str, str], Any]
"""``(module, name)`` → the object to use, :data:`IMPORT` to import it as pickle would, or None
to refuse it."""

IMPORT = object()


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only what ``resolve`` allows; ``refuse`` makes the exception
    for anything else. Subclasses set both (see :func:`restricted`)."""

    resolve: Resolve
    refuse: Callable[[str], Exception]

    def find_class(self, module: str, name: str) -> Any:
        # protocol-2 pickles from Python 3 name builtins the Python 2 way (__builtin__.unicode)
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        found = type(self).resolve(module, name)
        if found is IMPORT:
            return super().find_class(module, name)
        if found is None:
            raise type(self).refuse(f"{module}.{name}")
        return found


def restricted(resolve: Resolve, refuse: Callable[[str], Exception]) -> type[RestrictedUnpickler]:
    """An unpickler class with this allow-list and refusal."""
    return type("Unpickler", (RestrictedUnpickler,),
                {"resolve": staticmethod(resolve), "refuse": staticmethod(refuse)})


def load_restricted(data: bytes, resolve: Resolve, refuse: Callable[[str], Exception]) -> Any:
    """Unpickle ``data`` with the allow-list."""
    return restricted(resolve, refuse)(io.BytesIO(data)).load()


def pickle_module(unpickler: type[RestrictedUnpickler]) -> types.ModuleType:
    """A stand-in for the ``pickle`` module that ``torch.load(pickle_module=...)`` accepts."""
    module = types.ModuleType("w2vu_restricted_pickle")
    module.Unpickler = unpickler  # type: ignore[attr-defined]
    module.load = lambda f, **kw: unpickler(f, **kw).load()  # type: ignore[attr-defined]
    module.loads = lambda b, **kw: unpickler(io.BytesIO(b), **kw).load()  # type: ignore[attr-defined]
    return module
