"""Which server process reconciles: on PostgreSQL the holder of a session advisory lock, on SQLite the only one.

The lock lives on one dedicated connection; PostgreSQL releases it when that connection ends (process
exit, crash, network loss), and another process takes over at its next check. A leader that loses its
connection notices at its next check too, so for at most one check interval two processes may both
reconcile; reconcile steps are idempotent, which makes that harmless.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import Connection, text

from modeldeck.db import Database

log = logging.getLogger(__name__)

LOCK_KEY = 0x6D6F64656C6465  # "modelde": one key per database; every modeldeck process uses it


class LeaderLease:
    def __init__(self, db: Database, key: int = LOCK_KEY) -> None:
        self.db = db
        self.key = key
        self._conn: Connection | None = None
        self._pid: int | None = None  # the server session that holds the lock
        self.held = db.is_sqlite
        self._lock = threading.Lock()  # a resync may still be checking while the loop stops

    def check(self) -> bool:
        """Blocking: confirm or try to take the lease; True while this process leads."""
        if self.db.is_sqlite:
            return True
        with self._lock:
            return self._check()

    def _check(self) -> bool:
        try:
            if self._conn is None:
                self._conn = self.db.engine.connect()
            # SQLAlchemy reconnects an invalidated connection silently: a new session holds no lock.
            pid = self._conn.execute(text("SELECT pg_backend_pid()")).scalar()
            if self.held and pid != self._pid:
                log.warning("controller: lost the leader lease (database session ended)")
                self.held = False
            if not self.held:
                got = self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar()
                if got:
                    log.info("controller: this process is the leader")
                self.held, self._pid = bool(got), pid
            self._conn.commit()  # a session lock outlives the transaction; don't sit idle in one
        except Exception as exc:
            if self.held:
                log.warning("controller: lost the leader lease: %s", exc)
            self.held = False
            self._close()
        return self.held

    def release(self) -> None:
        with self._lock:
            self._release()

    def _release(self) -> None:
        if self._conn is not None and self.held:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.commit()
            except Exception as exc:
                log.warning("controller: releasing the leader lease: %s", exc)
        self.held = self.db.is_sqlite
        self._close()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()  # never hand a connection that held the lock back to the pool
                conn.close()
            except Exception:
                log.debug("closing the leader connection", exc_info=True)
