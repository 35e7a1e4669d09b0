-- prext PostgreSQL schema, version 9: per-report counts and numeric properties, as on SQLite.
--
-- Counts (`count=true`, summaries, top-N) and numeric property filters read small derived
-- tables instead of every result row and its JSON. prext computes both once per report in
-- Rust and writes them with the result rows, in the same transaction (one more statement in
-- the same flight); they go with the result rows: rewritten with them, and removed by a
-- delete (the counts at once, the numbers with the result rows, the rest by the purge).

-- How many results of a report have each (result, severity, source), a missing value as ''.
CREATE TABLE result_counts (
    object_id bigint NOT NULL,
    -- The report's cluster (objects.cluster), so fleet-wide counts need no join.
    cluster   text COLLATE "C" NOT NULL,
    result    text COLLATE "C" NOT NULL,
    severity  text COLLATE "C" NOT NULL,
    source    text COLLATE "C" NOT NULL,
    n         integer NOT NULL,
    PRIMARY KEY (object_id, result, severity, source)
);
COMMENT ON TABLE result_counts IS
    'prext: per report, how many results have each (result, severity, source)';

-- One row per result property whose value is a number, or a string that is one JSON number.
CREATE TABLE result_numbers (
    object_id bigint NOT NULL,
    idx       integer NOT NULL,
    key       text COLLATE "C" NOT NULL,
    value     double precision NOT NULL,
    PRIMARY KEY (object_id, idx, key)
);
CREATE INDEX result_numbers_key_value ON result_numbers (key, value);
COMMENT ON TABLE result_numbers IS
    'prext: the numeric properties of each result row, for range filters';

-- Existing reports (result rows awaiting their purge have no report and are left out).
INSERT INTO result_counts (object_id, cluster, result, severity, source, n)
SELECT r.object_id, o.cluster, coalesce(r.result, ''), coalesce(r.severity, ''),
       coalesce(r.source, ''), count(*)
FROM results AS r JOIN objects AS o ON o.id = r.object_id
GROUP BY 1, 2, 3, 4, 5;

-- A number out of double precision's range becomes an infinity (or 0), as Rust parses it;
-- strings with an exponent of more than four digits are left out.
INSERT INTO result_numbers (object_id, idx, key, value)
SELECT object_id, idx, key,
       CASE WHEN abs(v) > 1.7976931348623157e308 THEN sign(v) * 'Infinity'::double precision
            WHEN abs(v) < 2.2250738585072014e-308 THEN 0
            ELSE v::double precision END
FROM (
    SELECT r.object_id, r.idx, p.key,
           CASE WHEN jsonb_typeof(p.value) = 'number' THEN (p.value #>> '{}')::numeric
                WHEN jsonb_typeof(p.value) = 'string'
                     AND (p.value #>> '{}') ~ '^[ \t\n\r]*-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]{1,4})?[ \t\n\r]*$'
                THEN btrim(p.value #>> '{}', E' \t\n\r')::numeric END AS v
    FROM results AS r JOIN objects AS o ON o.id = r.object_id,
         jsonb_each(CASE WHEN jsonb_typeof(r.properties) = 'object' THEN r.properties ELSE '{}' END) AS p
) AS s
WHERE v IS NOT NULL;
