"""Progress lines: a burst goes out in few writes, a lone line at once, none waits long."""

from __future__ import annotations

import threading
import time

import pytest

from skyplan.errors import OutputError
from skyplan.progress import Lines


class Screen:
    def __init__(self, fail_after: int | None = None, error: BaseException | None = None) -> None:
        self.writes: list[tuple[float, str]] = []
        self.fail_after, self.error = fail_after, error

    def __call__(self, text: str) -> None:
        if self.fail_after is not None and len(self.writes) >= self.fail_after:
            raise self.error or OutputError("cannot write to standard output: No space left on device")
        self.writes.append((time.monotonic(), text))

    @property
    def text(self) -> str:
        return "".join(text for _, text in self.writes)


def test_a_burst_of_lines_goes_out_in_a_few_writes_in_order() -> None:
    screen = Screen()
    lines = Lines(screen)
    expected = [f"  + link.l{i:05d}: created\n" for i in range(10_000)]
    for line in expected:
        lines.add(line)
    lines.close()
    assert screen.text == "".join(expected)
    assert len(screen.writes) <= 10  # the first line at once, the rest in bursts


def test_a_line_after_a_quiet_spell_goes_out_at_once() -> None:
    screen = Screen()
    lines = Lines(screen)
    lines.add("one\n")
    time.sleep(2 * Lines.INTERVAL)
    lines.add("two\n")
    assert [text for _, text in screen.writes] == ["one\n", "two\n"]  # before any close
    lines.close()


def test_a_waiting_line_goes_out_without_another_line_or_the_end() -> None:
    screen = Screen()
    lines = Lines(screen)
    lines.add("first\n")
    added = time.monotonic()
    lines.add("second\n")  # within INTERVAL of the first write: it waits
    assert screen.text == "first\n"
    deadline = time.monotonic() + 5
    while screen.text != "first\nsecond\n" and time.monotonic() < deadline:
        time.sleep(0.005)
    assert screen.text == "first\nsecond\n"
    assert screen.writes[-1][0] - added < 1.0  # the timer, not a later event, wrote it
    lines.close()


def test_close_writes_what_waits_and_leaves_no_thread() -> None:
    before = threading.active_count()
    screen = Screen()
    lines = Lines(screen)
    lines.add("a\n")
    lines.add("b\n")
    lines.close()
    assert screen.text == "a\nb\n"
    assert threading.active_count() == before


@pytest.mark.parametrize("error", [OutputError("cannot write to standard output: No space left on device"), BrokenPipeError()])
def test_an_output_that_fails_is_remembered_and_tried_no_more(error) -> None:
    screen = Screen(fail_after=1, error=error)
    lines = Lines(screen)
    lines.add("shown\n")
    time.sleep(2 * Lines.INTERVAL)
    lines.add("lost\n")
    lines.add("never tried\n")
    lines.close()
    assert screen.text == "shown\n" and lines.failed is error


def test_a_bug_met_by_the_timer_is_raised_by_close() -> None:
    screen = Screen(fail_after=1, error=ZeroDivisionError("oops"))
    lines = Lines(screen)
    lines.add("shown\n")
    lines.add("waits for the timer\n")
    time.sleep(4 * Lines.INTERVAL)
    with pytest.raises(ZeroDivisionError):
        lines.close()


def test_a_timer_that_cannot_start_writes_the_line_at_once(monkeypatch) -> None:
    def refused(self) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Timer, "start", refused)
    screen = Screen()
    lines = Lines(screen)
    lines.add("one\n")
    lines.add("two\n")  # would wait for a timer: there is none to be had
    assert screen.text == "one\ntwo\n"
    lines.close()  # nothing to join
    assert screen.text == "one\ntwo\n"
