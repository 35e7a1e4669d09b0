-- prext PostgreSQL schema, version 14: fewer bytes per report row and change row.
--
-- changes.labels is NULL while the change is the newest write of its key (not a delete), as
-- its body has been since version 5: its labels are then objects.labels (same cluster, key and
-- revision). When the report is written again (or deleted), prext copies the superseded
-- labels into that change row with its body, in the same transaction, before replacing the
-- object; readers of the history take coalesce(c.labels, o.labels). A Kyverno report's labels
-- are about 1 KB of jsonb, stored a second time in every change row until now. Rows written
-- before version 14 keep their labels (the copy only fills a NULL): nothing is rewritten.
ALTER TABLE changes ALTER COLUMN labels DROP NOT NULL;

COMMENT ON COLUMN changes.labels IS
    'prext: the labels after the change (DELETED: the labels it had); NULL while this is the newest write of the key: read objects.labels';

-- A report row whose body goes out of line (TOAST) kept its labels uncompressed in the row:
-- PostgreSQL compresses the values of a row until the row fits in toast_tuple_target, and the
-- default (about 2 KB) was met as soon as the body had moved out. With 1 KB, labels of about
-- 1 KB (a Kyverno report's 22) are compressed too, about 1.8 times with LZ4, which costs a
-- few microseconds per write and per read of the labels. Rows of small reports (under about
-- 2 KB in all) are never compressed, whatever the target. Only rows written from now on are
-- affected.
ALTER TABLE objects SET (toast_tuple_target = 1024);
DO $$
BEGIN
    EXECUTE 'ALTER TABLE objects ALTER COLUMN labels SET COMPRESSION lz4';
EXCEPTION WHEN OTHERS THEN
    RAISE NOTICE 'prext: LZ4 compression is not available (%); labels stay pglz-compressed', SQLERRM;
END
$$;
