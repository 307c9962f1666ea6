"""Long-lived runtime backends shared by every compiled policy.

A policy reload builds new frozen guards, but counters, connections and writers must survive it:
guards reach them through ``CompileContext.services``. Each subsystem keeps its own attribute.
"""
from __future__ import annotations

from typing import Any


class Services:
    def __init__(self) -> None:
        # name -> object with optional async ``close()``; subsystems register lazily
        self._items: dict[str, Any] = {}
        # readiness problems reported by backends: name -> message (empty = ready)
        self.health: dict[str, str] = {}

    def get(self, name: str) -> Any:
        return self._items.get(name)

    def set(self, name: str, value: Any) -> Any:
        self._items[name] = value
        return value

    def get_or_create(self, name: str, factory) -> Any:
        item = self._items.get(name)
        if item is None:
            item = self._items[name] = factory()
        return item

    async def close(self) -> None:
        for item in list(self._items.values()):
            close = getattr(item, "close", None)
            if close is not None:
                res = close()
                if hasattr(res, "__await__"):
                    await res
        self._items.clear()
