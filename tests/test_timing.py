import itertools

import pytest

from profilehouse import timing
from profilehouse.timing import StepTimer


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """perf_counter ticks 0, 1.5, 3, 4.5, ... (1.5 s per call)."""
    ticks = itertools.count(0.0, 1.5)
    monkeypatch.setattr(timing.time, "perf_counter", lambda: next(ticks))


def test_a_step_run_twice_adds_up_and_keeps_its_first_place(clock: None) -> None:
    timer = StepTimer()
    with timer.step("read"):
        pass
    with timer.step("write"):
        pass
    with timer.step("read"):
        pass
    assert timer.seconds_by_step() == {"read": 3.0, "write": 1.5}


def test_a_failing_step_is_still_timed(clock: None) -> None:
    timer = StepTimer()
    with pytest.raises(RuntimeError), timer.step("boom"):
        raise RuntimeError("x")
    assert timer.seconds_by_step() == {"boom": 1.5}
