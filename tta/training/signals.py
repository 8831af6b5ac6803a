"""Stopping a training run cleanly: SIGTERM and a first Ctrl-C ask for a checkpoint and a stop after the step."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


class StopSignals:
    """While active (``with StopSignals(request_stop):``), SIGTERM and the first SIGINT call ``request_stop()``; a
    second SIGINT raises :class:`KeyboardInterrupt` at once. ``sigint`` tells whether a Ctrl-C came. Signal
    handlers belong to the main thread: elsewhere this does nothing."""

    def __init__(self, request_stop: Callable[[], None], write: Callable[[str], None] = print):
        self.request_stop, self.write = request_stop, write
        self.sigint = False
        self._previous = None

    def _on_sigint(self, *_):
        if self.sigint:
            raise KeyboardInterrupt
        self.sigint = True
        self.write("stopping after this step (Ctrl-C again to abort without a checkpoint)")
        self.request_stop()

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = (
                signal.signal(signal.SIGTERM, lambda *_: self.request_stop()),
                signal.signal(signal.SIGINT, self._on_sigint),
            )
        return self

    def __exit__(self, *exc) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous[0])
            signal.signal(signal.SIGINT, self._previous[1])
            self._previous = None
