-- prext PostgreSQL schema, version 3: a cheaper write path.
--
-- objects.results_digest: a digest of the report's result rows as last written (see
-- ReportIndex::results_digest), so that a rewrite that leaves them as they were (new labels,
-- annotations, a summary) does not delete and re-insert them. NULL for rows written before
-- version 3: their next write rewrites the results once and sets it.
ALTER TABLE objects ADD COLUMN results_digest bytea;

-- Result rows lose their foreign key to objects: checking it cost a lookup per result row on
-- every write, and prext, the only writer, deletes a report's rows with the report itself.
ALTER TABLE results DROP CONSTRAINT IF EXISTS results_object_id_fkey;

-- Stored bodies compressed with LZ4.
--
-- Report bodies (objects.body, changes.body) are JSON of 1 to 200 KB that PostgreSQL compresses
-- out of line (TOAST). Its default, pglz, costs about three times LZ4's time to compress (each
-- write compresses a body twice: the object and its change-log row) and more to decompress on
-- every list; LZ4 files are about a quarter larger. Only new values are affected; rows written
-- before keep pglz until they are rewritten. A server built without LZ4 (or older than
-- PostgreSQL 14) keeps pglz: the statements run through EXECUTE so that the migration itself
-- applies everywhere.
DO $$
BEGIN
    EXECUTE 'ALTER TABLE objects ALTER COLUMN body SET COMPRESSION lz4';
    EXECUTE 'ALTER TABLE changes ALTER COLUMN body SET COMPRESSION lz4';
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'prext: LZ4 compression is not available (%); bodies stay pglz-compressed', SQLERRM;
END
$$;
