"""Answers of a user study in SQLite: one row per answer, written (and committed) as it is given.

Tables: ``participants`` (code, the participant's own random image order, start time) and
``answers`` (code, image id, position in that order, choice, time). The primary key
(code, image id) makes a second answer to the same image impossible, and an answer is only
accepted for the participant's *next* unanswered image, so earlier answers cannot be revised.
Every statement is scoped by the participant's code: no query reads or writes another
participant's rows.
"""

from __future__ import annotations

import json
import random
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DATABASE_FILE = "answers.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS participants (
    code TEXT PRIMARY KEY,
    image_order TEXT NOT NULL,
    started_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS answers (
    code TEXT NOT NULL REFERENCES participants(code),
    image_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    choice TEXT NOT NULL,
    answered_at REAL NOT NULL,
    PRIMARY KEY (code, image_id)
);
"""


class AnswerRejected(Exception):
    """An answer the study does not accept; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Progress:
    """Where a participant stands: ``next_image`` is None once every image is answered."""

    answered: int
    total: int
    next_image: str | None


@dataclass(frozen=True)
class AnswerRow:
    code: str
    image_id: str
    position: int
    choice: str
    answered_at: float


class AnswerStore:
    """The study's SQLite file; safe to share between the server's worker threads."""

    def __init__(self, path: str | Path, image_ids: Sequence[str]) -> None:
        self.path = Path(path)
        self.image_ids = list(image_ids)
        self._known = set(self.image_ids)
        self._lock = threading.Lock()  # one writer at a time inside this process
        with self._connect() as connection:
            connection.execute("PRAGMA journal_mode=WAL")
            connection.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        try:
            connection.execute("PRAGMA foreign_keys=ON")
            yield connection
        finally:
            connection.close()

    def start(self, code: str) -> Progress:
        """Register ``code`` on its first visit (drawing its own random order); then resume."""
        with self._lock, self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            row = connection.execute("SELECT 1 FROM participants WHERE code = ?",
                                     (code,)).fetchone()
            if row is None:
                order = list(self.image_ids)
                random.SystemRandom().shuffle(order)
                connection.execute("INSERT INTO participants VALUES (?, ?, ?)",
                                   (code, json.dumps(order), time.time()))
            connection.execute("COMMIT")
        return self.progress(code)

    def progress(self, code: str) -> Progress:
        """Progress of a registered participant (KeyError for a code that never started)."""
        with self._connect() as connection:
            return self._progress(connection, code)

    def _progress(self, connection: sqlite3.Connection, code: str) -> Progress:
        row = connection.execute("SELECT image_order FROM participants WHERE code = ?",
                                 (code,)).fetchone()
        if row is None:
            raise KeyError(code)
        order = json.loads(row[0])
        answered = connection.execute("SELECT COUNT(*) FROM answers WHERE code = ?",
                                      (code,)).fetchone()[0]
        next_image = order[answered] if answered < len(order) else None
        return Progress(answered=answered, total=len(order), next_image=next_image)

    def answer(self, code: str, image_id: str, choice: str) -> Progress:
        """Store ``choice`` for ``image_id``, which must be ``code``'s next image.

        Raises AnswerRejected: 404 for an image id the study does not have, 409 for an image
        already answered (no revising) or one that is not the next in the participant's order.
        """
        if image_id not in self._known:
            raise AnswerRejected(404, "unknown image id")
        with self._lock, self._connect() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                progress = self._progress(connection, code)
                done = connection.execute(
                    "SELECT 1 FROM answers WHERE code = ? AND image_id = ?", (code, image_id)
                ).fetchone()
                if done is not None:
                    raise AnswerRejected(409, "this image is already answered; answers are final")
                if image_id != progress.next_image:
                    raise AnswerRejected(409, "answer the images in the order they are shown")
                connection.execute("INSERT INTO answers VALUES (?, ?, ?, ?, ?)",
                                   (code, image_id, progress.answered, choice, time.time()))
                connection.execute("COMMIT")
            except BaseException:
                connection.execute("ROLLBACK")
                raise
        return self.progress(code)

    def all_answers(self) -> list[AnswerRow]:
        """Every answer of every participant (for scoring; the web app never calls this)."""
        with self._connect() as connection:
            rows = connection.execute(
                "SELECT code, image_id, position, choice, answered_at FROM answers "
                "ORDER BY code, position").fetchall()
        return [AnswerRow(*row) for row in rows]
