"""Holding matched rows briefly so that rows arriving slightly out of order are applied in (eventdate, id) order.

Throttling is in event time, but which row *opens* an alert (and so the alert's id) depends on the order rows
are applied in: a backtest applies them sorted by (eventdate, finding id), a live source delivers them in
arrival order. Each matched row is held until its deadline (arrival + the reorder window, or later while a
source recovers from a crash); when a row's deadline passes, it is released together with every held row that
sorts before it, in sorted order. Rows that sort after it stay until their own deadline. No row is held past
its deadline, and rows released are always in sorted order relative to each other.
"""

from __future__ import annotations

import heapq
from collections import deque
from datetime import datetime
from typing import Generic, TypeVar

T = TypeVar("T")


class HoldBuffer(Generic[T]):
    def __init__(self) -> None:
        self._heap: list[tuple[datetime, str, int, T]] = []
        self._deadlines: deque[tuple[float, int, tuple[datetime, str, int]]] = deque()
        self._released: set[int] = set()
        self._seq = 0

    def __len__(self) -> int:
        return len(self._heap)

    def add(self, eventdate: datetime, finding_id: str, deadline: float, value: T) -> None:
        """Hold ``value`` until ``deadline`` (a ``time.monotonic()`` time)."""
        seq = self._seq
        self._seq += 1
        heapq.heappush(self._heap, (eventdate, finding_id, seq, value))
        # Deadlines usually arrive in increasing order; one that does not (a longer hold during recovery) is
        # kept in order by insertion, which is rare and short.
        entry = (deadline, seq, (eventdate, finding_id, seq))
        if self._deadlines and self._deadlines[-1][0] > deadline:
            items = list(self._deadlines)
            pos = next(i for i, e in enumerate(items) if e[0] > deadline)
            items.insert(pos, entry)
            self._deadlines = deque(items)
        else:
            self._deadlines.append(entry)

    def next_deadline(self) -> float | None:
        while self._deadlines and self._deadlines[0][1] in self._released:
            self._released.discard(self._deadlines.popleft()[1])
        return self._deadlines[0][0] if self._deadlines else None

    def due(self, now: float) -> list[T]:
        """Rows whose deadline has passed, and every row sorting before them, in sorted order."""
        out: list[T] = []
        while self._deadlines and self._deadlines[0][0] <= now:
            _, seq, key = self._deadlines.popleft()
            if seq in self._released:
                self._released.discard(seq)
                continue
            while self._heap and self._heap[0][:3] <= key:
                _, _, s, value = heapq.heappop(self._heap)
                if s != seq:
                    self._released.add(s)
                out.append(value)
        return out

    def drain(self) -> list[T]:
        """Everything held, in sorted order."""
        out = [heapq.heappop(self._heap)[3] for _ in range(len(self._heap))]
        self._deadlines.clear()
        self._released.clear()
        return out
