-- prext PostgreSQL schema, version 13: each numeric property row also holds its result's
-- result and severity, and the range index holds them too.
--
-- A numeric range with a result or severity condition that keeps few of its rows
-- (`property=score>=8` with `severity in (medium,low)`: 83,498 rows, no match at 1,000,000
-- results) probed `results_pkey` and read the result row of every number in the range to test
-- the condition. With both beside the number, and in `result_numbers_key_value` after the
-- range's columns, the condition is an index condition, and only the matches reach their
-- result rows. Only results with numeric properties have such rows (Trivy-like reports), so
-- only their writes carry the two short values (BENCHMARKS.md, "Filters in combination,
-- session 8"). As on `results`, a missing value is NULL.
--
-- The table is rebuilt rather than updated in place (an UPDATE of every row left the table
-- and the new index twice their size: the old row versions), its indexes built once filled.
CREATE TABLE result_numbers_v13 (
    object_id bigint NOT NULL,
    idx       integer NOT NULL,
    key       text COLLATE "C" NOT NULL,
    value     double precision NOT NULL,
    result    text,
    severity  text
);
INSERT INTO result_numbers_v13 (object_id, idx, key, value, result, severity)
SELECT n.object_id, n.idx, n.key, n.value, r.result, r.severity
FROM result_numbers AS n
LEFT JOIN results AS r ON r.object_id = n.object_id AND r.idx = n.idx;
DROP TABLE result_numbers;
ALTER TABLE result_numbers_v13 RENAME TO result_numbers;
ALTER TABLE result_numbers ADD CONSTRAINT result_numbers_pkey PRIMARY KEY (object_id, idx, key);
CREATE INDEX result_numbers_key_value ON result_numbers (key, value, result, severity);
COMMENT ON TABLE result_numbers IS
    'prext: the numeric properties of each result row (with its result and severity), for range filters';
-- A rebuilt table starts without planner statistics: until autovacuum got to it (up to a minute
-- later, and only once enough rows changed) a numeric range was planned as if the table were
-- empty (`score>=8` over 1,000,000 results: 19 ms before the upgrade, 400 ms after it, 4.3 s
-- for a page of one). ANALYZE runs in the migration's transaction.
ANALYZE result_numbers;
