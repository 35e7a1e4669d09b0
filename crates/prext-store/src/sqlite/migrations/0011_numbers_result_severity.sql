-- prext SQLite schema, version 11: each numeric property row also holds its result's result
-- and severity, and the range index holds them too.
--
-- A numeric range with a result or severity condition that keeps few of its rows
-- (`property=score>=8` with `severity in (medium,low)`: 83,498 rows, no match at 1,000,000
-- results) read the result row of every number in the range to test the condition (a lookup
-- per candidate in the 1.5 GB `results` table). With both beside the number, and in
-- `result_numbers_key_value` after the range's columns, the condition is tested inside the
-- index, and only the matches reach their result rows. Only results with numeric properties
-- have such rows (Trivy-like reports), so only their writes carry the two short values
-- (BENCHMARKS.md, "Filters in combination, session 8").
ALTER TABLE result_numbers ADD COLUMN result TEXT;
ALTER TABLE result_numbers ADD COLUMN severity TEXT;
UPDATE result_numbers
SET (result, severity) = (SELECT r.result, r.severity FROM results AS r
                          WHERE r.object_id = result_numbers.object_id AND r.idx = result_numbers.idx);
DROP INDEX result_numbers_key_value;
CREATE INDEX result_numbers_key_value ON result_numbers (key, value, result, severity);
