"""Write transactions take the write lock up front, so a read-then-write never hits SQLITE_BUSY.

With a deferred BEGIN, a connection that has read cannot wait for another writer (SQLite refuses
the lock upgrade at once to avoid deadlock, whatever the busy timeout): `database is locked`.
"""

from __future__ import annotations

import threading
import time

from edgegate_cli.store.state import open_state


def test_read_then_write_waits_for_another_writer(tmp_path):
    path = tmp_path / "state.db"
    main = open_state(path)
    main["audit_events"].insert({"at": "t", "actor": "a", "command": "c", "event": "e", "detail_json": "{}"})
    holding = threading.Event()

    def hold_write_lock():
        other = open_state(path)  # sqlite3 connections belong to their thread
        other.execute("BEGIN IMMEDIATE")
        other.execute("update audit_events set event = 'other'")
        holding.set()
        time.sleep(0.5)
        other.execute("COMMIT")
        other.close()

    t = threading.Thread(target=hold_write_lock)
    t.start()
    holding.wait(5)
    with main.atomic():  # reads, then writes, while `other` holds the write lock
        count = main["audit_events"].count
        main["audit_events"].insert({"at": "t", "actor": "a", "command": "c", "event": str(count),
                                     "detail_json": "{}"})
    t.join()
    assert [r["event"] for r in main["audit_events"].rows] == ["other", "1"]
