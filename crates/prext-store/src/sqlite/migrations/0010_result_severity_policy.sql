-- prext SQLite schema, version 10: the (result, severity) index also holds the policy.
--
-- "The 10 policies with the most critical failures" ranked every result row by policy
-- (the whole `results_policy_rule_result_severity` index, about 0.2 s of CPU over 1,000,000
-- results) although only the critical failures can lead it. With the policy appended, the rows
-- of one result × severity cell are an index range that holds their policy: the ranking reads
-- that range alone (results/top.rs). Its leading columns are unchanged, so every search it
-- served is served the same; no index is added.
DROP INDEX results_result_severity;
CREATE INDEX results_result_severity ON results (result, severity, policy);
