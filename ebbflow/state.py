"""ebbflow's state in SQLite: decisions and their outcomes, healing steps, each service's
learned start-up time, and the containers moved off a node at fault (whose originals are
removed when it returns).

The rule engine records decisions and reads cooldowns; the scaler records outcomes; the CLI
reads the audit log. Kept across restarts, so cooldowns outlive them.

A service's cooldown is measured from its last recorded decision; nothing else is stored
for it, so the two can never disagree.
"""

from __future__ import annotations

import collections
import contextlib
import json
import logging
import os
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ebbflow.model import Decision, DecisionOrigin, HealingStep, ServiceKey, outcome_text
from ebbflow.services import format_service_key, parse_service_key

log = logging.getLogger("ebbflow.state")

REFUSED = "the state file refuses reads or writes"
DELETED = "the state file was deleted under the running instance"
REPLACED = "the state file at its path is not the one this instance opened (replaced)"

SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    service TEXT NOT NULL,
    from_replicas INTEGER NOT NULL,
    to_replicas INTEGER NOT NULL,
    reason TEXT NOT NULL,
    inputs TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    outcome TEXT,
    detail TEXT,
    origin TEXT NOT NULL DEFAULT 'policy',
    owner TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS decisions_by_service ON decisions (service, dry_run, ts);
CREATE TABLE IF NOT EXISTS healing (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    service TEXT NOT NULL,
    slot TEXT NOT NULL,
    container TEXT NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    detail TEXT NOT NULL,
    dry_run INTEGER NOT NULL,
    refused INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS healing_by_slot ON healing (slot, dry_run, ts);
CREATE TABLE IF NOT EXISTS controls (
    service TEXT PRIMARY KEY,
    paused INTEGER NOT NULL,
    forgotten_ts REAL,
    ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_steps (
    slot TEXT PRIMARY KEY,
    failed_at REAL NOT NULL,
    dry_run INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS startups (
    service TEXT PRIMARY KEY,
    seconds REAL NOT NULL,
    last_seconds REAL NOT NULL,
    seen INTEGER NOT NULL,
    ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS desired (
    service TEXT PRIMARY KEY,
    replicas INTEGER NOT NULL,
    ts REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS migrations (
    container_id TEXT PRIMARY KEY,
    ts REAL NOT NULL,
    service TEXT NOT NULL,
    container TEXT NOT NULL,
    node TEXT NOT NULL,
    detail TEXT NOT NULL,
    removed_ts REAL
);
"""


@dataclass(frozen=True)
class Leftover:
    """The original of a container recreated elsewhere, still on its node."""

    service: ServiceKey
    container_id: str
    container: str
    node: str


@dataclass(frozen=True)
class StoredDecision:
    id: int
    timestamp: float
    service: str
    from_replicas: int
    to_replicas: int
    reason: str
    inputs: dict[str, float]
    dry_run: bool
    outcome: str | None
    detail: str | None
    origin: DecisionOrigin = "policy"
    owner: str = ""  # who decided: this instance's id, and its partition when Kafka shares


@dataclass(frozen=True)
class LearnedStartup:
    """How long a service's new replicas take from the decision to their first sample."""

    seconds: float  # smoothed over the start-ups seen
    last_seconds: float  # the newest one
    seen: int
    timestamp: float


class StateFileError(Exception):
    """The state file cannot be used at all; the message names it and says why."""


BACKLOG = 10_000  # writes kept while the file refuses them: hours of decisions and steps


class DecisionStore:
    """The state file. Its writes never raise: one that fails marks the store unhealthy
    (`problem`, counted, logged once per outage) and the catalog then lets no action be
    taken until a write succeeds again, so nothing is done that is not recorded. Reads that
    fail answer as if there were nothing and mark it the same way.

    A write the file refuses is not lost: it waits in order in a bounded backlog (later
    writes queue behind it, so an outcome never lands before its decision) and is written
    when the file works again (`check`). An action already under way when the file broke
    thus still gets its outcome. Past `BACKLOG` writes the oldest are dropped and counted
    (`dropped`)."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.memory = str(path) == ":memory:"
        self.problem: str | None = None  # why the file cannot be written now
        self.errors = 0  # reads and writes it refused
        self.backlog: collections.deque[tuple[str, tuple[Any, ...]]] = collections.deque()
        self.dropped = 0  # backlogged writes dropped past BACKLOG
        try:
            if not self.memory:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = self._open()
        except (sqlite3.Error, OSError) as err:
            raise StateFileError(f"state file {self.path}: cannot be used: {err}") from None
        self.identity = self._identity()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            # One transaction, so a reader never sees half a schema.
            db.executescript(f"BEGIN;\n{SCHEMA}\n{self._upgrades(db)}COMMIT;")
            self._synchronous = int(db.execute("PRAGMA synchronous").fetchone()[0])
        except BaseException:
            db.close()
            raise
        return db

    def _identity(self) -> tuple[int, int] | None:
        """(device, inode) of the file at the path: another one there is not ours."""
        if self.memory:
            return None
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return stat.st_dev, stat.st_ino

    # -- every statement goes through here ---------------------------------------------
    def _exec(
        self, sql: str, args: Sequence[Any] = (), write: bool = True
    ) -> sqlite3.Cursor | None:
        """A statement; None (and the store marked unhealthy) when the file refuses it.
        A refused write waits in the backlog, and so does every write after it until the
        backlog is written. Only a write that succeeds says the file works again (reads
        may work while writes do not)."""
        if write and self.backlog:
            self._keep(sql, args)
            return None
        try:
            cursor = self._db.execute(sql, args)
        except sqlite3.Error as err:
            self._failed(err)
            if write:
                self._keep(sql, args)
            return None
        if write and self.problem is not None and self.problem.startswith(REFUSED):
            log.info("state file %s: works again", self.path)
            self.problem = None
        return cursor

    def _keep(self, sql: str, args: Sequence[Any]) -> None:
        if len(self.backlog) >= BACKLOG:
            self.backlog.popleft()
            self.dropped += 1
            if self.dropped == 1:
                log.error(
                    "state file %s: more than %d writes waiting; dropping the oldest",
                    self.path,
                    BACKLOG,
                )
        self.backlog.append((sql, tuple(args)))

    def _write_backlog(self) -> bool:
        """The writes the file refused, in order; True when none is left."""
        while self.backlog:
            sql, args = self.backlog[0]
            try:
                self._db.execute(sql, args)
            except sqlite3.Error as err:
                self._failed(err)
                return False
            self.backlog.popleft()
        return True

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self._exec(sql, args, write=False)
        return cursor.fetchall() if cursor is not None else []

    def _row(self, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        cursor = self._exec(sql, args, write=False)
        return cursor.fetchone() if cursor is not None else None

    def _failed(self, err: sqlite3.Error) -> None:
        self.errors += 1
        if self.problem is None:
            log.error(
                "state file %s refuses reads or writes: %s; no action until it works",
                self.path,
                err,
            )
        self.problem = f"{REFUSED}: {err}"

    # -- the file itself (StateWatch calls it every second) -------------------------------
    def check(self) -> str | None:
        """Still the file at its path, and writable: a heartbeat write. A file deleted under
        the running instance is written back from the open copy on the next check (so the
        outage shows in between); one replaced by another file stops every action until
        it is moved back (another file's history is not this instance's to act on).
        Returns the problem, None when it works."""
        if self.memory:
            return None
        now_identity = self._identity()
        if now_identity is None:
            if self.problem is not None and self.problem.startswith(DELETED):
                self._restore()
            else:
                log.error(
                    "state file %s was deleted under the running instance; no action until "
                    "it is written back",
                    self.path,
                )
                self.problem = f"{DELETED} ({self.path}); written back from the open copy next"
            return self.problem
        if now_identity != self.identity:
            if self.problem is None or not self.problem.startswith(REPLACED):
                log.error(
                    "state file %s was replaced by another file: no action until it is moved "
                    "back, or ebbflow restarted on it",
                    self.path,
                )
            self.problem = f"{REPLACED} ({self.path}): move it back, or restart ebbflow on it"
            return self.problem
        try:
            self._heartbeat()
        except sqlite3.Error as err:
            self._failed(err)
            return self.problem
        if self.backlog:
            waiting = len(self.backlog)
            if not self._write_backlog():
                return self.problem
            log.info("state file %s: wrote the %d writes it had refused", self.path, waiting)
        if self.problem is not None:
            log.info("state file %s: works again", self.path)
            self.problem = None
        return self.problem

    def _heartbeat(self) -> None:
        """A write that shows the file takes writes, without an fsync: a lost heartbeat
        loses nothing (the records keep the default, synced commit). Each second's fsync
        held the event loop for a millisecond."""
        self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('heartbeat', ?)", (time.time(),)
            )
        finally:
            self._db.execute(f"PRAGMA synchronous={self._synchronous}")

    def _restore(self) -> None:
        """The deleted file, written back from the connection that still holds it: copied
        out, the old connection closed (and its write-ahead log, which belongs to the
        deleted file, removed), the copy put in place and opened."""
        temporary = self.path.with_name(self.path.name + ".restoring")
        try:
            target = sqlite3.connect(str(temporary))
            try:
                self._db.backup(target)
            finally:
                target.close()
            self._db.close()
            for suffix in ("-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{self.path}{suffix}")
            os.replace(temporary, self.path)
            self._db = self._open()
        except (sqlite3.Error, OSError) as err:
            self.problem = f"{DELETED} ({self.path}); writing it back failed: {err}"
            log.error("state file %s: %s", self.path, self.problem)
            with contextlib.suppress(sqlite3.Error, OSError):
                self._db = self._open()  # at the path again, or tried again next time
            return
        self.identity = self._identity()
        self.problem = None
        log.warning("state file %s: written back from the open copy; acting again", self.path)

    @staticmethod
    def _upgrades(db: sqlite3.Connection) -> str:
        """Columns added since a state file was created (the file outlives versions)."""
        added = {
            "decisions": {
                "origin": "origin TEXT NOT NULL DEFAULT 'policy'",
                "owner": "owner TEXT NOT NULL DEFAULT ''",
            },
            "healing": {"refused": "refused INTEGER NOT NULL DEFAULT 0"},
        }
        statements = []
        for table, columns in added.items():
            have = {row[1] for row in db.execute(f"PRAGMA table_info({table})")}
            if have:  # a new file gets them from the schema
                statements += [
                    f"ALTER TABLE {table} ADD COLUMN {column};\n"
                    for name, column in columns.items()
                    if name not in have
                ]
        return "".join(statements)

    def close(self) -> None:
        self._db.close()

    @property
    def writable(self) -> bool:
        return self.problem is None

    def record(self, decision: Decision, outcome: tuple[str, str] | None = None) -> int:
        """A decision, with its (outcome, detail) when it is known at once (a row that only
        notes what happened): one statement, so the two are never apart."""
        done, detail = outcome if outcome is not None else (None, None)
        cursor = self._exec(
            "INSERT INTO decisions (ts, service, from_replicas, to_replicas, reason, inputs,"
            " dry_run, origin, owner, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                decision.timestamp,
                format_service_key(decision.service),
                decision.from_replicas,
                decision.to_replicas,
                decision.reason,
                json.dumps(dict(decision.inputs)),
                int(decision.dry_run),
                decision.origin,
                decision.owner,
                done,
                detail,
            ),
        )
        return int(cursor.lastrowid or 0) if cursor is not None else 0

    def record_startup(self, service: ServiceKey, startup: LearnedStartup) -> None:
        self._exec(
            "INSERT OR REPLACE INTO startups (service, seconds, last_seconds, seen, ts)"
            " VALUES (?, ?, ?, ?, ?)",
            (
                format_service_key(service),
                startup.seconds,
                startup.last_seconds,
                startup.seen,
                startup.timestamp,
            ),
        )

    def startup(self, service: ServiceKey) -> LearnedStartup | None:
        row = self._row(
            "SELECT seconds, last_seconds, seen, ts FROM startups WHERE service = ?",
            (format_service_key(service),),
        )
        return LearnedStartup(*row) if row else None

    def record_outcome(
        self, decision: Decision, ok: bool, detail: str, refused: bool = False
    ) -> None:
        """ok, failed, or refused: not attempted, a safety gate said no."""
        self._exec(
            "UPDATE decisions SET outcome = ?, detail = ? WHERE service = ? AND ts = ?",
            (
                outcome_text(ok, refused),
                detail,
                format_service_key(decision.service),
                decision.timestamp,
            ),
        )

    def record_outcome_text(self, decision_id: int, outcome: str, detail: str) -> None:
        self._exec(
            "UPDATE decisions SET outcome = ?, detail = ? WHERE id = ?",
            (outcome, detail, decision_id),
        )

    def unfinished(self) -> list[StoredDecision]:
        """Decisions (not dry runs) whose action never reported: cut off by a stop."""
        rows = self._rows(
            "SELECT * FROM decisions WHERE outcome IS NULL AND dry_run = 0 ORDER BY ts, id"
        )
        return [self._decision(r) for r in rows]

    def record_step(self, step: HealingStep, slot: str) -> None:
        self._exec(
            "INSERT INTO healing (ts, service, slot, container, action, reason, attempt, ok,"
            " detail, dry_run, refused) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                step.timestamp,
                format_service_key(step.service),
                slot,
                step.container,
                step.action,
                step.reason,
                step.attempt,
                int(step.ok),
                step.detail,
                int(step.dry_run),
                int(step.refused),
            ),
        )

    def set_paused(self, service: str, paused: bool, when: float) -> None:
        """The operator's `ebbflow pause|resume SERVICE` (as they named it)."""
        self._exec(
            "INSERT INTO controls (service, paused, ts) VALUES (?, ?, ?) ON CONFLICT(service)"
            " DO UPDATE SET paused = excluded.paused, ts = excluded.ts",
            (service, int(paused), when),
        )

    def forget(self, service: ServiceKey, named: str, when: float) -> int:
        """`ebbflow forget SERVICE`: its decisions go; a running instance drops its desired
        count. Returns how many decisions were dropped."""
        cursor = self._exec(
            "DELETE FROM decisions WHERE service = ?", (format_service_key(service),)
        )
        dropped = cursor.rowcount if cursor is not None else 0
        self._exec(
            "INSERT INTO controls (service, paused, forgotten_ts, ts) VALUES (?, 0, ?, ?)"
            " ON CONFLICT(service) DO UPDATE SET forgotten_ts = excluded.forgotten_ts,"
            " ts = excluded.ts",
            (named, when, when),
        )
        return int(dropped)

    def controls(self) -> list[tuple[str, bool, float | None]]:
        """(service as named, paused, when it was last forgotten)."""
        rows = self._rows("SELECT service, paused, forgotten_ts FROM controls")
        return [(str(r[0]), bool(r[1]), None if r[2] is None else float(r[2])) for r in rows]

    def record_pending(self, slot: str, failed_at: float, dry_run: bool) -> None:
        """A healing step is scheduled for the slot's failure at `failed_at`: a restart of
        ebbflow before it is taken takes it when it was due."""
        self._exec(
            "INSERT OR REPLACE INTO pending_steps (slot, failed_at, dry_run) VALUES (?, ?, ?)",
            (slot, failed_at, int(dry_run)),
        )

    def clear_pending(self, slot: str) -> None:
        self._exec("DELETE FROM pending_steps WHERE slot = ?", (slot,))

    def pending_steps(self, dry_run: bool) -> dict[str, float]:
        """Slot → when it failed, for every step scheduled and not taken."""
        rows = self._rows(
            "SELECT slot, failed_at FROM pending_steps WHERE dry_run = ?", (int(dry_run),)
        )
        return {str(r[0]): float(r[1]) for r in rows}

    def record_migration(
        self,
        service: ServiceKey,
        container_id: str,
        container: str,
        node: str,
        detail: str,
        when: float,
    ) -> None:
        self._exec(
            "INSERT OR REPLACE INTO migrations (container_id, ts, service, container, node,"
            " detail, removed_ts) VALUES (?, ?, ?, ?, ?, ?, NULL)",
            (container_id, when, format_service_key(service), container, node, detail),
        )

    def leftovers(self, node: str) -> list[Leftover]:
        rows = self._rows(
            "SELECT service, container_id, container, node FROM migrations"
            " WHERE node = ? AND removed_ts IS NULL ORDER BY ts",
            (node,),
        )
        return [Leftover(parse_service_key(r[0]), r[1], r[2], r[3]) for r in rows]

    def has_leftovers(self, service: ServiceKey) -> bool:
        """Originals of the service's migrated containers are still to be removed."""
        row = self._row(
            "SELECT 1 FROM migrations WHERE service = ? AND removed_ts IS NULL LIMIT 1",
            (format_service_key(service),),
        )
        return row is not None

    def leftover_removed(self, container_id: str, when: float) -> None:
        self._exec(
            "UPDATE migrations SET removed_ts = ? WHERE container_id = ?", (when, container_id)
        )

    def healing_since(self, since: float, dry_run: bool) -> list[tuple[str, str, float]]:
        """(slot, action, time) of the restarts and replacements since `since`, oldest first:
        a restart of ebbflow does not reset a crash loop's backoff. A refused step was not
        taken, and spends none of the budget."""
        rows = self._rows(
            "SELECT slot, action, ts FROM healing WHERE ts >= ? AND dry_run = ?"
            " AND action IN ('restart', 'replace') AND refused = 0 ORDER BY ts",
            (since, int(dry_run)),
        )
        return [(str(r[0]), str(r[1]), float(r[2])) for r in rows]

    def recent_steps(
        self, limit: int = 50, service: ServiceKey | None = None
    ) -> list[dict[str, Any]]:
        """The latest healing steps (of one service), newest first, for the audit CLI."""
        where = " WHERE service = ?" if service is not None else ""
        args = (format_service_key(service),) if service is not None else ()
        cursor = self._exec(
            "SELECT ts, service, container, action, reason, attempt, ok, detail, dry_run,"
            f" refused FROM healing{where} ORDER BY ts DESC, id DESC LIMIT ?",
            (*args, limit),
            write=False,
        )
        if cursor is None:
            return []
        names = [column[0] for column in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        for row in rows:
            row["ok"], row["dry_run"] = bool(row["ok"]), bool(row["dry_run"])
            row["outcome"] = outcome_text(row["ok"], bool(row.pop("refused")))
        return rows

    def has_decisions(self, service: ServiceKey, dry_run: bool) -> bool:
        """Whether this instance ever recorded a decision (of any origin) on the service."""
        row = self._row(
            "SELECT 1 FROM decisions WHERE service = ? AND dry_run = ? LIMIT 1",
            (format_service_key(service), int(dry_run)),
        )
        return row is not None

    def last_decision_time(
        self, service: ServiceKey, dry_run: bool, direction: str | None = None
    ) -> float | None:
        """When the service's last policy decision (in `direction`: "out" or "in") was
        taken; reconciling to the desired count starts no cooldown."""
        query = (
            "SELECT MAX(ts) FROM decisions WHERE service = ? AND dry_run = ? AND origin = 'policy'"
        )
        if direction == "out":
            query += " AND to_replicas > from_replicas"
        elif direction == "in":
            query += " AND to_replicas < from_replicas"
        row = self._row(query, (format_service_key(service), int(dry_run)))
        return float(row[0]) if row and row[0] is not None else None

    def last_carried_out(self, service: ServiceKey) -> tuple[int, str] | None:
        """(replicas, origin) of the service's last decision carried out (not a dry run)."""
        row = self._row(
            "SELECT to_replicas, origin FROM decisions WHERE service = ? AND dry_run = 0"
            " AND outcome = 'ok' AND origin != 'rollover' ORDER BY ts DESC, id DESC LIMIT 1",
            (format_service_key(service),),
        )
        return (int(row[0]), str(row[1])) if row else None

    def record_desired(self, service: ServiceKey, replicas: int | None, when: float) -> None:
        """The count the reconciler keeps a service at (None: none any more), so a restart
        of ebbflow that finds its replicas exited knows what to restore."""
        key = format_service_key(service)
        if replicas is None:
            self._exec("DELETE FROM desired WHERE service = ?", (key,))
            return
        self._exec(
            "INSERT INTO desired (service, replicas, ts) VALUES (?, ?, ?) ON CONFLICT(service)"
            " DO UPDATE SET replicas = excluded.replicas, ts = excluded.ts"
            " WHERE desired.replicas != excluded.replicas",
            (key, replicas, when),
        )

    def desired(self, service: ServiceKey) -> int | None:
        row = self._row(
            "SELECT replicas FROM desired WHERE service = ?", (format_service_key(service),)
        )
        return int(row[0]) if row else None

    def resolve(self, service: str) -> str:
        """`compose:demo/web`, `demo/web` or `web`, as the store names it; LookupError
        (saying which services there are) when it names none or several."""
        known = self.services()
        matches = [
            k
            for k in known
            if k == service or k.endswith(":" + service) or k.rsplit("/", 1)[-1] == service
        ]
        if len(matches) != 1:
            listed = ", ".join(known) or "none yet"
            what = "matches several" if matches else "has no decisions"
            raise LookupError(f"{service!r} {what} (services with decisions: {listed})")
        return matches[0]

    def services(self) -> list[str]:
        """Every service with at least one recorded decision."""
        rows = self._rows("SELECT DISTINCT service FROM decisions ORDER BY service")
        return [str(row[0]) for row in rows]

    def recent(self, limit: int = 50, service: ServiceKey | None = None) -> list[StoredDecision]:
        query = "SELECT * FROM decisions"
        args: tuple[object, ...] = ()
        if service is not None:
            query += " WHERE service = ?"
            args = (format_service_key(service),)
        query += " ORDER BY ts DESC, id DESC LIMIT ?"
        rows = self._rows(query, (*args, limit))
        return [self._decision(r) for r in rows]

    @staticmethod
    def _decision(r: tuple[Any, ...]) -> StoredDecision:
        return StoredDecision(
            r[0],
            r[1],
            r[2],
            r[3],
            r[4],
            r[5],
            json.loads(r[6]),
            bool(r[7]),
            r[8],
            r[9],
            r[10],
            r[11],
        )
