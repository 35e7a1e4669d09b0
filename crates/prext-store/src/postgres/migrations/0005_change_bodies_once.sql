-- prext PostgreSQL schema, version 5: a report's current body is stored once.
--
-- Until version 3 every change-log row held the body it wrote, so the newest version of each
-- report was stored twice: in objects.body and in its last changes.body. From version 5
-- changes.body is NULL while the change is the newest write of its report (not a delete): its
-- body is then objects.body (same cluster, key and revision). When the report is written again
-- (or deleted), prext copies the superseded body into that change row in the same transaction,
-- before replacing the object, so the watch history replays every change exactly as before.
-- Readers of the history take coalesce(c.body, o.body) joined on key and revision.
ALTER TABLE changes ALTER COLUMN body DROP NOT NULL;

UPDATE changes c SET body = NULL
FROM objects o
WHERE o.cluster = c.cluster AND o.resource = c.resource AND o.namespace = c.namespace
  AND o.name = c.name AND o.revision = c.revision AND c.event <> 'DELETED';

COMMENT ON COLUMN changes.body IS
    'prext: the object after the change (DELETED: its last state); NULL while this is the newest write of the key: read objects.body';
