-- prext PostgreSQL schema, version 11: top-N summaries and groupings read the result indexes
-- alone (index-only scans), with no more indexes to maintain per write.
--
-- results_result_severity gains the policy: "the policies with the most failures of a
-- severity" counts the index range of the cell, without visiting one table row per result.
-- results_policy_rule gains the result and the severity: the counts per result and severity
-- of a page's policies are ranges of the index too. Both keep their leading columns, so every
-- query that searched them searches them as before (a rule is still found under its policy).
-- Index-only scans need the visibility map: prext vacuums `results` as it analyzes it
-- (statistics.rs), autovacuum after inserts as well.
DROP INDEX IF EXISTS results_result_severity;
CREATE INDEX results_result_severity ON results (result, severity, cluster, policy);
DROP INDEX IF EXISTS results_policy_rule;
CREATE INDEX results_policy_rule ON results (policy, rule, cluster, result, severity);
