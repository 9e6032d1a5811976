"""A thread of the service that sends the mail outbox and runs the expiry sweep every ``interval`` s."""
from __future__ import annotations

import logging
import threading

log = logging.getLogger(__name__)


class NotificationWorker:
    def __init__(self, db, gov, notifier, mailer, interval: float):
        self.db, self.gov, self.notifier, self.mailer, self.interval = db, gov, notifier, mailer, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> tuple[int, int, int]:
        """(warned, sent, failed) of one pass."""
        warned = 0
        try:
            with self.db.session() as s:
                warned = self.notifier.expiry_sweep(s, self.gov)
        except Exception as e:  # noqa: BLE001 - logged; the next pass tries again
            log.error("expiry sweep failed: %s", e)
        sent, failed = self.mailer.send_pending(self.db)
        return warned, sent, failed

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except Exception as e:  # noqa: BLE001
                log.error("notification pass failed: %s", e)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="notifications", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(5)
