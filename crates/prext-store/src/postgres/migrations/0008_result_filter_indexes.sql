-- prext PostgreSQL schema, version 8: the subject index leads with the subject's name.
--
-- A `subject.name` filter alone (every result about one Pod, whatever its namespace) could not
-- search the old (subject_namespace, subject_kind, subject_name, cluster) index and read all of
-- it (about 0.1 s over 1,000,000 results, and 1.5 s when the planner then walked every report
-- for a page of one). Leading with the name serves that filter and every filter that also
-- names the namespace and kind, with the same single index: no extra cost per write.
--
-- A trigram index for `message` filters is deliberately not created here: measured on
-- 200,000 result rows written 20 per statement, it made inserting them about four times as
-- expensive (docs/postgres.md says how to add it when message searches matter more).
DROP INDEX IF EXISTS results_subject;
CREATE INDEX results_subject ON results (subject_name, subject_namespace, subject_kind, cluster);
