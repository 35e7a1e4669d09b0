-- prext PostgreSQL schema, version 7: large deletes are incremental.
--
-- A delete removes the report's row and appends its change in the delete's transaction; the
-- first rows of its results go with it, and a report with more is listed here, its remaining
-- result rows removed afterwards in bounded chunks by the writer (of any replica) between
-- other writes. Queries reach result rows through their report (`objects`), so rows awaiting
-- their purge are never served. Object ids are never reused (an identity column).
CREATE TABLE purges (
    object_id bigint PRIMARY KEY,
    cluster   text COLLATE "C" NOT NULL,
    -- The revision of the delete.
    revision  bigint NOT NULL
);
COMMENT ON TABLE purges IS
    'prext: deleted reports whose remaining result rows the writer removes in chunks';
