-- prext SQLite schema, version 9: the subject index leads with the subject's name.
--
-- `results_subject` was (subject_namespace, subject_kind, subject_name): a `subject.name`
-- filter alone (every result about one Pod, whatever its namespace) could not search it and
-- scanned every result row (about 0.8 s over 1,000,000 results). Leading with the name serves
-- that filter and every filter that also names the namespace and kind, with the same single
-- index (no extra cost per write); a `subject.namespace` filter alone is rarer and is served by
-- the report's namespace in practice (a namespaced report's results are about its namespace).
DROP INDEX results_subject;
CREATE INDEX results_subject ON results (subject_name, subject_namespace, subject_kind);
