"""The hold buffer: released rows come out sorted, none is held past its deadline, none is lost."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from minerwatch.live.reorder import HoldBuffer

T0 = datetime(2025, 3, 3, tzinfo=UTC)

rows = st.lists(
    st.tuples(
        st.integers(0, 50),  # event time, minutes
        st.sampled_from(["a", "b", "c"]),  # finding id
        st.floats(0, 10),  # arrival time
        st.floats(0, 5),  # hold
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(rows=rows, checks=st.lists(st.floats(0, 20), max_size=10))
def test_released_in_order_by_deadline_and_nothing_lost(
    rows: list[tuple[int, str, float, float]], checks: list[float]
) -> None:
    buf: HoldBuffer[int] = HoldBuffer()
    arrivals = sorted(enumerate(rows), key=lambda r: r[1][2])
    keys = {i: (T0 + timedelta(minutes=m), fid, i) for i, (m, fid, _, _) in enumerate(rows)}
    deadline = {i: at + hold for i, (_, _, at, hold) in enumerate(rows)}
    released: list[tuple[float, int]] = []
    times = sorted(checks)
    pending = list(arrivals)
    now = 0.0
    for t in [*times, 30.0]:
        # rows arriving before this check go in, each released batch is taken at time t
        while pending and pending[0][1][2] <= t:
            i, (m, fid, at, _hold) = pending.pop(0)
            buf.add(T0 + timedelta(minutes=m), fid, deadline[i], i)
        batch = buf.due(t)
        assert [keys[i][:2] for i in batch] == sorted(keys[i][:2] for i in batch)
        released += [(t, i) for i in batch]
        now = t
        # Nothing is held past its deadline: every row still held is due later.
        nd = buf.next_deadline()
        assert nd is None or nd > t
    # Every row comes out exactly once.
    rest = buf.drain()
    assert sorted([i for _, i in released] + rest) == list(range(len(rows)))
    assert now == 30.0 and len(buf) == 0


def test_a_late_earlier_row_overtakes_held_later_rows() -> None:
    buf: HoldBuffer[str] = HoldBuffer()
    buf.add(T0 + timedelta(minutes=10), "b", 1.0, "later, arrived first")
    buf.add(T0 + timedelta(minutes=5), "a", 1.5, "earlier, arrived second")
    buf.add(T0 + timedelta(minutes=20), "c", 1.2, "latest")
    assert buf.due(0.9) == []
    # b's deadline releases b and everything sorting before it: a first, though a could wait longer.
    assert buf.due(1.0) == ["earlier, arrived second", "later, arrived first"]
    assert buf.next_deadline() == 1.2
    assert buf.due(1.3) == ["latest"]
    assert buf.next_deadline() is None and len(buf) == 0


def test_a_longer_hold_keeps_deadlines_in_order() -> None:
    buf: HoldBuffer[str] = HoldBuffer()
    buf.add(T0, "x", 10.0, "recovering")
    buf.add(T0 + timedelta(minutes=1), "y", 2.0, "normal")
    assert buf.next_deadline() == 2.0
    assert buf.due(2.0) == ["recovering", "normal"]  # x sorts first, so it leaves with y
    assert buf.next_deadline() is None
