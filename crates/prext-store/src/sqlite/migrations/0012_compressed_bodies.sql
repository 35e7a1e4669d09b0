-- prext SQLite schema, version 12: bodies stored compressed, and each report's newest labels
-- stored once.
--
-- `objects.body` and `changes.body` keep their declared type (TEXT), but from this version a
-- body is written as a BLOB when compression makes it smaller: one format byte (1: an LZ4
-- block, preceded by the body's length as a little-endian 32-bit integer), then the
-- compressed JSON. A small body is still written as TEXT, and the TEXT bodies written before
-- this version stay as they are: prext reads both (crates/prext-store/src/sqlite/body.rs), and
-- a body becomes a BLOB when its report is written again. An older prext, which would read a
-- BLOB as text, refuses the file (its version is newer).
--
-- `changes.labels` is NULL exactly when `changes.body` is (the change is the newest write of
-- a report that still exists): the labels are then `objects.labels` (same key and revision),
-- as the body is `objects.body` since version 5. Writing the report again or deleting it
-- copies both into the change row. The table is rebuilt (SQLite cannot drop a NOT NULL
-- constraint in place), which also drops the copies the newest changes held.
CREATE TABLE changes_v12 (
    revision     INTEGER PRIMARY KEY,
    event        TEXT    NOT NULL CHECK (event IN ('ADDED', 'MODIFIED', 'DELETED')),
    resource     TEXT    NOT NULL,
    namespace    TEXT    NOT NULL,
    name         TEXT    NOT NULL,
    -- The object after the change; for DELETED, its last state stamped with this revision.
    -- NULL while this is the report's newest write: the body is then objects.body. TEXT (JSON)
    -- or, compressed, a BLOB (see above).
    body         TEXT,
    -- Labels after the change (for DELETED: the labels it had); NULL when body is NULL: the
    -- labels are then objects.labels.
    labels       TEXT,
    -- Labels before the change; NULL for ADDED.
    prev_labels  TEXT,
    -- The write's time, Unix milliseconds (version 7).
    written_at   INTEGER,
    -- What the write did to the report's result rows, for the findings indexer (version 7).
    results_flag INTEGER,
    CHECK (labels IS NOT NULL OR body IS NULL)
);
INSERT INTO changes_v12 (revision, event, resource, namespace, name, body, labels, prev_labels,
                         written_at, results_flag)
SELECT revision, event, resource, namespace, name, body,
       CASE WHEN body IS NULL THEN NULL ELSE labels END,
       prev_labels, written_at, results_flag
FROM changes ORDER BY revision;
DROP TABLE changes;
ALTER TABLE changes_v12 RENAME TO changes;
