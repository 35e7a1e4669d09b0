-- prext SQLite schema, version 7: findings are indexed off the write path.
--
-- Until version 6 each write recorded its findings in its own transaction, which cost writes
-- with failing results 40-75 % more CPU. From version 7 a write only stores, in its change-log
-- row, its time and what it did to the report's result rows; the findings indexer follows the
-- change log by revision and applies each change in order, with the same semantics (see
-- docs/results-api.md): the failing rows of a rewritten report are read from the change's body.
--
-- `written_at`: the write's time, Unix milliseconds (the findings' first_seen, last_seen and
-- resolved_at). `results_flag`: 0 the update kept the report's result rows (its findings are
-- only seen again), 1 the rows were rewritten and none fails, 2 the rows were rewritten and
-- some fail (fail, warn or error); NULL for deletes and for changes written before version 7.
ALTER TABLE changes ADD COLUMN written_at INTEGER;
ALTER TABLE changes ADD COLUMN results_flag INTEGER;

-- The newest revision whose change the indexer has applied, written in the transaction of
-- the findings it wrote. Compaction keeps every change above it. The findings recorded so
-- far (in the writes' transactions) are up to date: the indexer starts at the current revision.
CREATE TABLE findings_cursor (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    revision INTEGER NOT NULL
);
INSERT INTO findings_cursor (id, revision) SELECT 1, revision FROM meta WHERE id = 1;

-- Carriers are known by the report's key, not its row id: the indexer may apply the change of
-- a report whose row has since been deleted (and a deleted row's id may be reused).
CREATE TABLE finding_carriers_v7 (
    resource   TEXT    NOT NULL,
    namespace  TEXT    NOT NULL,
    name       TEXT    NOT NULL,
    finding_id INTEGER NOT NULL,
    PRIMARY KEY (resource, namespace, name, finding_id)
) WITHOUT ROWID;
INSERT INTO finding_carriers_v7 (resource, namespace, name, finding_id)
SELECT o.resource, o.namespace, o.name, c.finding_id
FROM finding_carriers c JOIN objects o ON o.id = c.object_id;
DROP TABLE finding_carriers;
ALTER TABLE finding_carriers_v7 RENAME TO finding_carriers;
CREATE INDEX finding_carriers_finding ON finding_carriers (finding_id);
