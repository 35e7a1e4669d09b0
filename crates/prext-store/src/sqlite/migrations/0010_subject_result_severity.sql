-- prext SQLite schema, version 10: the subject index also holds the result and the severity.
--
-- A summary grouped by the subject's kind (or API version) counts every matching result by
-- kind, result and severity in one pass (results/onepass.rs); no index held those three, so
-- the pass read the whole `results` table (1.5 GB at 1,000,000 results). Appending `result,
-- severity` to `results_subject` makes the pass a scan of that index. Its leading columns are
-- unchanged, so every subject search is served the same; no index is added, and its entries
-- grow by the two short values (inserting 200,000 result rows: within the noise of the same
-- inserts without them, BENCHMARKS.md, session 7).
DROP INDEX results_subject;
CREATE INDEX results_subject ON results (subject_name, subject_namespace, subject_kind, result, severity);
