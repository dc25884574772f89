"""SIGINT / SIGTERM only set a flag; the loop finishes its step and the run ends cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import threading


@contextlib.contextmanager
def stop_on_signals(state):
    """While active, the first Ctrl-C (or SIGTERM) asks the loop to stop; a second Ctrl-C aborts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if state.stop:  # second signal: do not wait for anything
            os._exit(130 if signum == signal.SIGINT else 143)
        state.stop = "interrupted" if signum == signal.SIGINT else "terminated"

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
