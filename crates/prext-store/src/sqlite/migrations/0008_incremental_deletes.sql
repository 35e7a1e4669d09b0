-- prext SQLite schema, version 8: large deletes are incremental.
--
-- Deleting a report used to remove its result rows in the delete's own transaction (a
-- cascade from `objects`): 50,000 results held the single writer, and so every other write,
-- for seconds. Now the delete removes the report's row, its per-report counts and its change
-- in one small transaction, and records the report in `purges` when it has many results; the
-- writer then removes those result rows and numeric properties in bounded chunks between
-- other writes (and finishes after a restart). Queries reach result rows through a live
-- report (`objects`), so rows awaiting their purge are never served; see docs/schema.md.
--
-- So `results` and `result_numbers` lose their cascading foreign key to `objects`. Removing a
-- foreign key clause changes nothing on disk: it is edited in the stored schema, the procedure
-- SQLite documents for removing constraints (https://www.sqlite.org/lang_altertable.html,
-- "Making other kinds of table schema changes"), instead of rebuilding two large tables.

PRAGMA writable_schema = ON;
UPDATE sqlite_schema
SET sql = replace(sql, ' REFERENCES objects (id) ON DELETE CASCADE', '')
WHERE type = 'table' AND name IN ('results', 'result_numbers');
PRAGMA writable_schema = RESET;

-- Reports deleted whose result rows are still being removed. Their ids are never reused
-- while they are listed here (a new report takes an id above every one of them).
CREATE TABLE purges (
    object_id INTEGER PRIMARY KEY,
    -- The revision of the delete.
    revision  INTEGER NOT NULL
);
