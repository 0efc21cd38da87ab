"""run_stages: order kept, every stage's error raised in the caller, threads ended."""

from __future__ import annotations

import threading
import time

import pytest

from dpst.serve.runtime.stages import run_stages


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("dpst-")}


def test_items_arrive_in_order_through_all_three_stages():
    seen = []
    run_stages(range(50), lambda x: x * 2, seen.append, depth=2)
    assert seen == [2 * x for x in range(50)]
    assert not _threads()


def _failing_source():
    yield 1
    raise ValueError("bad input")


@pytest.mark.parametrize("where", ["source", "middle", "sink"])
def test_an_error_in_any_stage_is_raised_in_the_caller_and_stops_the_others(where):
    written = []

    def middle(x):
        if where == "middle" and x == 3:
            raise ValueError("bad input")
        return x

    def sink(x):
        if where == "sink" and x == 3:
            raise ValueError("bad input")
        written.append(x)

    source = _failing_source() if where == "source" else iter(range(1000))
    with pytest.raises(ValueError, match="bad input"):
        run_stages(source, middle, sink)
    assert not _threads()
    assert len(written) < 10  # stopped, not run to the end


def test_an_interrupt_in_the_middle_stops_reading_and_writing():
    written = []

    def middle(x):
        if x == 5:
            raise KeyboardInterrupt
        return x

    def slow_source():
        for x in range(1000):
            time.sleep(0.001)
            yield x

    with pytest.raises(KeyboardInterrupt):
        run_stages(slow_source(), middle, written.append)
    assert not _threads()
    assert written == [0, 1, 2, 3, 4][: len(written)]  # nothing after the interrupt


def test_a_signal_while_the_last_items_are_written_waits_for_the_writer():
    # A real signal to the main thread while it waits for the sink to finish its queue (the
    # end of a video): on CPython 3.11 an interrupted Thread.join marks the thread stopped
    # while it runs, and run_stages returned with the sink still writing, into a container
    # its caller then closed and deleted.
    import signal

    started, finished, armed = threading.Event(), [], [True]

    def slow_sink(item):
        started.set()
        time.sleep(1.0)
        finished.append(item)

    def interrupt() -> None:
        started.wait(10)
        time.sleep(0.2)  # the main thread is waiting for the sink by now
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    def handler(signum, frame) -> None:
        # Ctrl-C's KeyboardInterrupt while run_stages runs; a signal arriving later (a very
        # loaded machine) must not stop the test session.
        if armed[0]:
            raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, handler)  # whatever a library set before
    killer = threading.Thread(target=interrupt)
    killer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            run_stages([1], lambda x: x, slow_sink)
        armed[0] = False
    finally:
        armed[0] = False
        killer.join()
        signal.signal(signal.SIGINT, previous)
    assert finished == [1]  # the sink's item was done before run_stages raised
    assert not _threads()
