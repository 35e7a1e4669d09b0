-- prext PostgreSQL schema, version 6: indexes for the result filters that scanned every row.
--
-- 1. `results_subject` leads with the subject's name: a `subject.name` filter alone (every
--    result about one Pod, whatever its namespace) could not search the old
--    (subject_namespace, subject_kind, subject_name, cluster) index. Same number of indexes,
--    so no extra cost per write.
-- 2. `message` filters (`message=TEXT`: contains, ASCII case-insensitive) search a trigram
--    index when the server has the pg_trgm extension (contrib; a trusted extension since
--    PostgreSQL 13, so the database owner may create it). Without it the migration still
--    succeeds and the filter scans, as before. The index is on the expression the query
--    tests (ASCII lower-casing, like SQLite's LIKE), so the two always agree.
DROP INDEX IF EXISTS results_subject;
CREATE INDEX results_subject ON results (subject_name, subject_namespace, subject_kind, cluster);

DO $$
BEGIN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'prext: pg_trgm is not available (%); message filters will scan', SQLERRM;
END
$$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
        EXECUTE 'CREATE INDEX IF NOT EXISTS results_message_trgm ON results USING gin '
                '((translate(message, ''ABCDEFGHIJKLMNOPQRSTUVWXYZ'', ''abcdefghijklmnopqrstuvwxyz'')) '
                'gin_trgm_ops)';
    END IF;
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'prext: no trigram index on results.message (%); message filters will scan', SQLERRM;
END
$$;
