"""Ctrl-C and SIGTERM held back while a file or database write must not be abandoned halfway."""

from __future__ import annotations

import contextlib
import signal


class Interrupts:
    """Ctrl-C (SIGINT) and SIGTERM, as KeyboardInterrupt, but only where it is safe.

    A journal or database write abandoned halfway can leave a lock file behind
    or a record that no one finishes, so a signal interrupts at once only inside
    ``training()`` (work that may be dropped: a sweep's training); anywhere else
    it is remembered, and ``check()`` raises KeyboardInterrupt at the next safe
    point. Use as a context manager, in the main thread: it installs the
    handlers and restores the previous ones.
    """

    def __init__(self):
        self.pending, self.open, self._saved = False, False, {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._saved[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.open:
            self.open = False
            raise KeyboardInterrupt
        self.pending = True

    def check(self) -> None:
        if self.pending:
            self.pending = False
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def training(self):
        """While the body runs, a signal interrupts it at once."""
        self.check()
        self.open = True
        try:
            yield
        finally:
            self.open = False

    @contextlib.contextmanager
    def held(self):
        """Inside ``training()``: hold signals back while the body writes to the storage."""
        was, self.open = self.open, False
        try:
            yield
        finally:
            self.open = was
        if was:
            self.check()
