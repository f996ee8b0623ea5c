"""A fixed number of slots, shared in turn between groups of keys: the probe slots.

At most `capacity` keys hold a slot at once. A key that finds none free gets in
its group's line and holds nothing meanwhile (in the engine: no worker). A
freed slot is handed to the first key of the group whose turn it is, and that
group goes to the end of the round; `on_grant` is told, so the key can come
back and `take` it. One group's long line therefore delays another group's key
by one turn, not by the whole line.

Nothing here knows Kubernetes: keys are any hashable values, grouped by a
function of the key (the engine groups Destinations by namespace).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["FairSlots"]

K = TypeVar("K", bound=Hashable)


class FairSlots(Generic[K]):
    """`capacity` slots; waiting keys in one line per group; freed slots go round the groups."""

    def __init__(
        self,
        capacity: int,
        group: Callable[[K], Hashable],
        on_grant: Callable[[K], None] = lambda _key: None,
    ) -> None:
        self.capacity = capacity
        self.free = capacity  # slots neither held nor handed to a waiting key
        self._group = group
        self._on_grant = on_grant
        self._lines: OrderedDict[Hashable, deque[K]] = OrderedDict()  # group -> its line
        self._waiting: set[K] = set()  # in a line
        self._granted: set[K] = set()  # handed a freed slot, not yet taken

    @property
    def waiting(self) -> int:
        """Keys in line for a slot."""
        return len(self._waiting)

    @property
    def granted(self) -> frozenset[K]:
        """Keys a freed slot was handed to, which have not taken it yet."""
        return frozenset(self._granted)

    def is_waiting(self, key: K) -> bool:
        """Whether `key` is in line for a slot."""
        return key in self._waiting

    def in_line(self) -> list[K]:
        """The keys in line, group by group in turn."""
        return [key for line in self._lines.values() for key in line]

    def take(self, key: K) -> bool:
        """A slot for `key` now (the one handed to it, or a free one when nobody waits);
        else False, with `key` in its group's line for the next one."""
        if key in self._granted:
            self._granted.discard(key)
            return True
        if self.free > 0 and not self._lines:
            self.free -= 1
            return True
        if key not in self._waiting:
            self._waiting.add(key)
            self._lines.setdefault(self._group(key), deque()).append(key)
        return False

    def release(self) -> None:
        """A slot taken is free again: hand it to the first key of the group whose turn it
        is (that group goes to the end of the round), or keep it when nobody waits."""
        if not self._lines:
            self.free += 1
            return
        group, line = next(iter(self._lines.items()))
        key = line.popleft()
        if line:
            self._lines.move_to_end(group)
        else:
            del self._lines[group]
        self._waiting.discard(key)
        self._granted.add(key)
        self._on_grant(key)

    def pass_on(self, key: K) -> None:
        """`key` will not use the slot handed to it (if one was): hand it on."""
        if key in self._granted:
            self._granted.discard(key)
            self.release()

    def forget(self, key: K) -> None:
        """`key` is gone: out of its line, and any slot handed to it handed on."""
        if key in self._waiting:
            self._waiting.discard(key)
            group = self._group(key)
            line = self._lines[group]
            line.remove(key)
            if not line:
                del self._lines[group]
        self.pass_on(key)
