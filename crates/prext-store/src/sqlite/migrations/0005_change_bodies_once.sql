-- prext SQLite schema, version 5: a report's current body is stored once.
--
-- Until version 3 every change-log row held the body it wrote, so the newest version of each
-- report was stored twice: in `objects.body` and in its last `changes.body`. From version 5
-- `changes.body` is NULL while the change is the newest write of its report (not a delete):
-- its body is then `objects.body` (same revision). When the report is written again (or
-- deleted), prext copies the superseded body into that change row in the same transaction,
-- before replacing the object, so the watch history replays every change exactly as before.
-- Readers of the history take `coalesce(c.body, o.body)` joined on key and revision.
--
-- SQLite cannot drop a NOT NULL constraint in place: the table is rebuilt, and the rows whose
-- body is the current object's lose their copy.

CREATE TABLE changes_v4 (
    revision    INTEGER PRIMARY KEY,
    event       TEXT    NOT NULL CHECK (event IN ('ADDED', 'MODIFIED', 'DELETED')),
    resource    TEXT    NOT NULL,
    namespace   TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    -- The object after the change; for DELETED, its last state stamped with this revision.
    -- NULL while this is the report's newest write: the body is then objects.body.
    body        TEXT,
    -- Labels after the change (for DELETED: the labels it had).
    labels      TEXT    NOT NULL,
    -- Labels before the change; NULL for ADDED.
    prev_labels TEXT
);
INSERT INTO changes_v4 (revision, event, resource, namespace, name, body, labels, prev_labels)
SELECT c.revision, c.event, c.resource, c.namespace, c.name,
       CASE WHEN c.event <> 'DELETED' AND EXISTS (
                SELECT 1 FROM objects o
                WHERE o.resource = c.resource AND o.namespace = c.namespace AND o.name = c.name
                  AND o.revision = c.revision)
            THEN NULL ELSE c.body END,
       c.labels, c.prev_labels
FROM changes c ORDER BY c.revision;
DROP TABLE changes;
ALTER TABLE changes_v4 RENAME TO changes;
