"""A call that runs in a child process, with a time limit, so untrusted bytes cannot freeze us.

A regular expression that backtracks, or any parse that runs for minutes, holds the Python
interpreter's lock: in a thread, it froze the SMTP listener and the watchdog pings along with
the worker. In a child process it holds only the child's. The parent waits on a pipe, which
holds no lock; past the time limit it kills the child (SIGKILL: a loop in C does not see
anything gentler) and starts a new one for the next message.

One child serves one call at a time and lives on between calls. It is started from the
forkserver with the called function's module already imported, so a restart after a kill costs
a fork, not the imports. It ignores SIGINT and SIGTERM: the parent decides when it ends (a
`systemctl stop` signals the whole unit, and the message in hand is the parent's to finish or
leave pending). It dies with the parent (PR_SET_PDEATHSIG), so a parent killed with SIGKILL
leaves no child parsing on.

Calls may also be sent ahead (`submit`) and their results taken later (`collect`), in the
order sent: the worker sends the next messages to the child and applies the current one
meanwhile, so the parses and the database work of the messages before them run on both cores
(issue 19). The child works through them one after another; a result it has finished waits in
the pipe (the socket's buffer holds a few; past that the child waits for the parent to read,
so the results sent ahead never pile up in memory). The time limit of a call sent ahead runs
from the moment the child can be known to have started it: when it was sent to an idle child,
or when the parent received the result before it. When a call is stopped past its limit or the
child dies in it, the calls queued behind it are sent again to a new child: only the call that
was running fails.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import pickle
import signal
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from domain.allocator import release_large_buffers
from domain.errors import Temporary, TicketdError

log = logging.getLogger("ticketd.isolation")
_PR_SET_PDEATHSIG = 1


def start_forkserver(preload: Sequence[str]) -> None:
    """Start the forkserver now, importing `preload` (the module of the function a later
    `IsolatedCall` runs): a command that will parse starts it before it imports its own
    modules, so the two imports of a second or more each run on both cores side by side
    instead of one after the other (issue 19: a tenth of importing 1,000 messages). The
    forkserver is the one `IsolatedCall` uses; started already, its preload stays this."""
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(list(preload))
    forkserver.ensure_running()


class CallTimedOut(TicketdError):
    """The call ran past its time limit; the child was killed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"stopped after {seconds:g} s")
        self.seconds = seconds


class ChildDied(Temporary):
    """The child ended while it ran the call (killed, out of memory, a crash in C)."""


class Interrupted(Temporary):
    """The parent closed the runner while the call ran (the daemon stops)."""


class _SameFirst:
    """Sent in place of a call's first argument when it is the very object the call before
    sent to this child (the worker's configuration, most of each call's pickle): the child
    takes the one it kept (issue 19: pickling it per message, and unpickling it, cost both
    processes about as much as the rest of the call's arguments and pipe together)."""


def _serve(function: Callable[..., Any], conn: Connection) -> None:
    """The child's loop: one call in, its result (or the exception it raised) out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    release_large_buffers()  # a process of its own, started afresh by the forkserver
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the pipe's EOF still ends the loop
        pass
    first: Any = None  # the first argument of the last call that sent one
    while True:
        try:
            args = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if args and isinstance(args[0], _SameFirst):
            args = (first, *args[1:])
        elif args:
            first = args[0]
        try:
            result = function(*args)
        except Exception as error:
            result = error
        _send(conn, result)
        del args, result  # a message's bytes are not kept while the child waits for the next


def _send(conn: Connection, result: Any) -> None:
    """`result` pickled with protocol 5: the count of out-of-band buffers (an attachment's
    payload: domain/message.py), the pickle, then each buffer as a message of its own, which
    `_receive` takes as it arrives instead of copying it out of the pickle."""
    data, buffers = _pickled(result)
    conn.send(len(buffers))
    conn.send_bytes(data)
    for buffer in buffers:
        conn.send_bytes(buffer.raw())


def _receive(conn: Connection) -> Any:
    count = conn.recv()
    data = conn.recv_bytes()
    buffers = [conn.recv_bytes() for _ in range(count)]
    return pickle.loads(data, buffers=buffers)


def _pickled(result: Any) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """`result` pickled, or a RuntimeError that says what it was when it would not arrive: an
    exception whose constructor takes other arguments than its message does not unpickle.
    The check unpickles with empty buffers: what travels out of band is bytes already."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        data = pickle.dumps(result, protocol=5, buffer_callback=buffers.append)
        pickle.loads(data, buffers=[b""] * len(buffers))
    except Exception as error:
        where = ""
        if isinstance(result, BaseException) and result.__traceback__ is not None:
            frame = traceback.extract_tb(result.__traceback__)[-1]
            where = f" at {frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}"
        failed = RuntimeError(f"{type(result).__name__}: {result}{where} ({error})"[:2000])
        return pickle.dumps(failed, protocol=5), []
    return data, buffers


@dataclass
class Ahead:
    """A call sent to the child whose result nobody has taken yet."""

    tag: Any  # the caller's: what the call is about
    args: tuple[Any, ...]  # sent again to a new child when one before it killed the old one
    timeout: float
    # time.monotonic() past which the child is stopped; None while calls before it may still
    # run (its limit starts when the result before it arrives).
    deadline: float | None = None


class IsolatedCall:
    """`call(*args, timeout=...)` runs `function(*args)` in the child and returns its result,
    or the exception it raised, or CallTimedOut / ChildDied / Interrupted (returned, never
    raised: the caller's policy decides). `function` must be a module-level function and its
    arguments and result must pickle. A first argument that is the very object of the call
    before is not sent again (`_SameFirst`): it must not change between calls (the worker's
    frozen configuration; a reloaded one is a new object)."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload([function.__module__])
        self._child: BaseProcess | None = None
        self._conn: Connection | None = None
        self._lock = threading.Lock()  # one call at a time
        self._closed = False
        self.busy = False  # a call is waiting for the child
        self._queue: deque[Ahead] = deque()  # sent ahead, in the order sent
        # The first argument sent to this child last (`_SameFirst`); None after a new start.
        self._first_sent: Any = None

    def start(self) -> None:
        """Start the child now (the forkserver and the imports take a second or two), so the
        first message does not wait for them."""
        with self._lock:
            if not self._closed:
                self._start()

    def _start(self) -> Connection:
        if self._conn is not None and self._child is not None and self._child.is_alive():
            return self._conn
        self._stop_child()
        parent, child_end = self._context.Pipe()
        child = self._context.Process(
            target=_serve, args=(self.function, child_end), name="ticketd-parse", daemon=True
        )
        child.start()
        child_end.close()
        self._child, self._conn = child, parent
        self._first_sent = None
        return parent

    def call(self, *args: Any, timeout: float) -> Any:
        with self._lock:
            if self._closed:
                return Interrupted("the worker is stopping")
            self._drop_ahead()  # their results would be taken for this call's
            self._send(args)
            return self._wait(time.monotonic() + timeout, timeout)

    def submit(self, tag: Any, *args: Any, timeout: float) -> bool:
        """Send a call ahead, its result taken by `collect` after those sent before it; False
        when the runner is closed."""
        with self._lock:
            if self._closed:
                return False
            idle = not self._queue
            self._send(args)
            self._queue.append(
                Ahead(tag, args, timeout, time.monotonic() + timeout if idle else None)
            )
            return True

    @property
    def ahead(self) -> Any:
        """The tag of the first call sent ahead and not yet collected, or None."""
        queue = self._queue
        return queue[0].tag if queue else None

    @property
    def queued(self) -> tuple[Any, ...]:
        """The tags of the calls sent ahead and not yet collected, in the order sent."""
        return tuple(ahead.tag for ahead in self._queue)

    def collect(self) -> Any:
        """The result of the first call sent ahead (what `call` would have returned for it)."""
        with self._lock:
            if not self._queue:
                raise RuntimeError("no call was sent ahead")
            ahead = self._queue.popleft()
            if self._closed:
                return Interrupted("the worker is stopping")
            deadline = ahead.deadline
            if deadline is None:  # not reached: the result before it was never received
                deadline = time.monotonic() + ahead.timeout
            result = self._wait(deadline, ahead.timeout)
            self._after_collect(result)
            return result

    def _after_collect(self, result: Any) -> None:
        """The next call's limit starts now (the child has taken it up at the latest as it
        sent this result), or, when the child was stopped or died in this call, the calls
        behind it go to a new child."""
        if not self._queue or self._closed:
            return
        now = time.monotonic()
        if isinstance(result, (CallTimedOut, ChildDied)):
            for ahead in self._queue:
                self._send(ahead.args)
                ahead.deadline = None
        head = self._queue[0]
        if head.deadline is None:
            head.deadline = now + head.timeout

    def cancel(self) -> tuple[Any, ...]:
        """Forget the calls sent ahead, stopping the child if one still runs; their tags."""
        with self._lock:
            tags = self.queued
            self._drop_ahead()
            return tags

    def _drop_ahead(self) -> None:
        if self._queue:
            self._queue.clear()
            self._stop_child()  # cheaper than waiting: a new child is a fork of the forkserver

    def _send(self, args: tuple[Any, ...]) -> None:
        conn = self._start()
        sent = args
        if args and self._first_sent is not None and args[0] is self._first_sent:
            sent = (_SameFirst(), *args[1:])
        with contextlib.suppress(OSError, EOFError):  # the child is gone: the wait says so
            conn.send(sent)
            self._first_sent = args[0] if args else None

    def _wait(self, deadline: float, timeout: float) -> Any:
        conn = self._conn
        if conn is None:
            return ChildDied("the parsing process ended before the call")
        self.busy = True
        try:
            ready = conn.poll(max(deadline - time.monotonic(), 0.0))
        except (OSError, EOFError):
            ready = True  # the child is gone: recv says so below
        finally:
            self.busy = False
        if self._closed:
            return Interrupted("the worker is stopping")
        if not ready:
            self._stop_child()
            return CallTimedOut(timeout)
        try:
            return _receive(conn)
        except (EOFError, OSError):
            code = self._child.exitcode if self._child is not None else None
            self._stop_child()
            return ChildDied(f"the parsing process ended (exit status {code})")

    def _stop_child(self) -> None:
        child, conn = self._child, self._conn
        self._child = self._conn = None
        if conn is not None:
            conn.close()
        if child is not None:
            if child.is_alive():
                child.kill()
            child.join(timeout=5)

    def close(self) -> None:
        """Kill the child, even in the middle of a call (whose caller gets Interrupted)."""
        # The calls sent ahead stay known: the caller's `cancel` forgets their tries.
        self._closed = True
        child = self._child
        if child is not None and child.is_alive():
            child.kill()  # wakes a caller waiting in poll: it sees the pipe close
        with self._lock:
            self._stop_child()
