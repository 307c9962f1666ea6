"""A module imported when first used, at no cost to the uses after that.

``np = lazy("numpy", globals(), "np")`` binds a stand-in; the first attribute read through it
imports the module and rebinds the name in the importer's namespace to the module itself, so
from then on ``np.dot`` is the plain global lookup an ``import numpy as np`` gives. Used for
libraries that `aifw policy check` never calls but serving does (numpy for the character model,
jsonschema for tool arguments): a start makes them real before it reports ready (``load``), so a
request never pays an import.
"""
from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any, MutableMapping


class LazyModule:
    __slots__ = ("_name", "_namespace", "_alias")

    def __init__(self, name: str, namespace: MutableMapping[str, Any], alias: str) -> None:
        self._name, self._namespace, self._alias = name, namespace, alias

    def _load(self) -> ModuleType:
        module = importlib.import_module(self._name)
        if self._namespace.get(self._alias) is self:
            self._namespace[self._alias] = module
        return module

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._load(), attr)

    def __repr__(self) -> str:
        return f"<lazy module {self._name!r}>"


def lazy(name: str, namespace: MutableMapping[str, Any], alias: str) -> Any:
    """A stand-in for module ``name`` (absolute), bound as ``alias`` in ``namespace``."""
    return LazyModule(name, namespace, alias)


def load(namespace: MutableMapping[str, Any], alias: str) -> ModuleType:
    """Import now what ``namespace[alias]`` stands for (nothing to do when it is imported)."""
    value = namespace[alias]
    return value._load() if isinstance(value, LazyModule) else value
