"""Three stages on three threads, in order, in bounded memory: a source read ahead, a middle
step on the caller's thread, a sink written behind.

``dpst video`` decodes the next frame and encodes the last one while the model works on the
current one: the codecs (FFmpeg, which releases the GIL) and the model (ONNX Runtime, which
does too) then share the cores instead of taking turns. Queues of ``depth`` items bound the
frames in flight. Order is kept (one thread per stage). An exception in any stage, or a
KeyboardInterrupt in the caller's, stops all three and is raised in the caller's thread once
the others have ended, so nothing writes after the caller has moved on.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable
from typing import Any

_END = object()
_POLL_SECONDS = 0.05  # how soon a blocked stage notices that another one stopped


def run_stages(
    source: Iterable[Any],
    middle: Callable[[Any], Any],
    sink: Callable[[Any], None],
    depth: int = 2,
) -> None:
    """``sink(middle(item))`` for every item of ``source``, in order; ``source`` is iterated
    on one thread, ``sink`` called on another, ``middle`` on the caller's."""
    stop = threading.Event()
    inbox: queue.Queue = queue.Queue(depth)
    outbox: queue.Queue = queue.Queue(depth)
    errors: list[BaseException] = []

    def put(box: queue.Queue, item: Any) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=_POLL_SECONDS)
                return True
            except queue.Full:
                continue
        return False

    def get(box: queue.Queue) -> Any:
        while not stop.is_set():
            try:
                return box.get(timeout=_POLL_SECONDS)
            except queue.Empty:
                continue
        return _END

    def fail(error: BaseException) -> None:
        errors.append(error)
        stop.set()

    # Set by each thread as its last act. Waited on instead of Thread.join: on CPython 3.11 a
    # join interrupted by a signal (KeyboardInterrupt from Ctrl-C or dpst's SIGTERM handler)
    # releases the thread's state lock and marks it stopped while it still runs, so the join
    # in ``finally`` returned at once and the caller closed (and deleted) the file the sink
    # was still writing. An interrupted Event.wait leaves the event as it was.
    read_done, write_done = threading.Event(), threading.Event()

    def read() -> None:
        try:
            for item in source:
                if not put(inbox, item):
                    return
            put(inbox, _END)
        except BaseException as error:
            fail(error)
        finally:
            read_done.set()

    def write() -> None:
        try:
            while (item := get(outbox)) is not _END:
                sink(item)
        except BaseException as error:
            fail(error)
        finally:
            write_done.set()

    reader = threading.Thread(target=read, name="dpst-read", daemon=True)
    writer = threading.Thread(target=write, name="dpst-write", daemon=True)
    reader.start()
    writer.start()
    try:
        while (item := get(inbox)) is not _END:
            if not put(outbox, middle(item)):
                break
        put(outbox, _END)
        write_done.wait()  # the sink finishes its queue before anything is torn down
    except BaseException:
        stop.set()
        raise
    finally:
        stop.set()
        write_done.wait()
        read_done.wait()
    if errors:
        raise errors[0]
