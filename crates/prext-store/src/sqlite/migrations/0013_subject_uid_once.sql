-- prext SQLite schema, version 13: a result's subject uid is stored once per report when it
-- is the report's scope uid.
--
-- Most results are about their report's scope (a Kyverno report: every result about its Pod),
-- and each result row and each entry of `results_subject_uid` repeated the scope's 36-character
-- uid: about 1,400 of the 13,500 bytes a 17-result report took (BENCHMARKS.md, "SQLite bytes
-- per report, session 9"). From this version `results.subject_uid` is
--   - NULL when the subject's uid is the report's `objects.scope_uid` (both absent included),
--   - an empty BLOB (X'') when the subject has no uid but the scope has one,
--   - the uid (TEXT) otherwise;
-- the subject's uid is `CASE WHEN r.subject_uid IS NULL THEN o.scope_uid WHEN
-- typeof(r.subject_uid) = 'text' THEN r.subject_uid END`, as the views below read it.
-- `results_subject_uid` becomes a partial index of the uids stored (a query for a uid also
-- searches `objects_scope_uid`, then those reports' rows stored NULL), so rows about their
-- report's scope have no entry in it. A report whose scope uid changes has its rows rewritten.

DROP VIEW report_results;
DROP VIEW results_v1;
DROP INDEX results_subject_uid;

-- Rows of reports awaiting their purge (no `objects` row) are never read, and stay as they are.
UPDATE results
SET subject_uid = CASE WHEN results.subject_uid IS NULL THEN X'' END
FROM objects AS o
WHERE o.id = results.object_id
  AND (results.subject_uid = o.scope_uid
       OR (results.subject_uid IS NULL AND o.scope_uid IS NOT NULL));

CREATE INDEX results_subject_uid ON results (subject_uid) WHERE subject_uid IS NOT NULL;
CREATE INDEX objects_scope_uid ON objects (scope_uid) WHERE scope_uid IS NOT NULL;

-- Results with the report they belong to: the usual starting point of an analyst's query.
CREATE VIEW report_results AS
SELECT o.resource, o.namespace, o.name AS report, o.uid AS report_uid, o.revision AS report_revision,
       r.idx, r.policy, r.rule, r.result, r.severity, r.category, r.source, r.scored, r.timestamp,
       r.message, r.properties, r.resources, r.subject_api_version, r.subject_kind,
       r.subject_namespace, r.subject_name,
       CASE WHEN r.subject_uid IS NULL THEN o.scope_uid WHEN typeof(r.subject_uid) = 'text' THEN r.subject_uid END AS subject_uid
FROM results r JOIN objects o ON o.id = r.object_id;

-- Stable analyst view of the results, one row per result with its report (docs/sql.md).
CREATE VIEW results_v1 AS
SELECT CASE o.resource
           WHEN 'policyreports.wgpolicyk8s.io' THEN 'wgpolicyk8s.io/v1alpha2'
           WHEN 'clusterpolicyreports.wgpolicyk8s.io' THEN 'wgpolicyk8s.io/v1alpha2'
           WHEN 'reports.openreports.io' THEN 'openreports.io/v1alpha1'
           WHEN 'clusterreports.openreports.io' THEN 'openreports.io/v1alpha1'
           WHEN 'ephemeralreports.reports.kyverno.io' THEN 'reports.kyverno.io/v1'
           WHEN 'clusterephemeralreports.reports.kyverno.io' THEN 'reports.kyverno.io/v1'
           WHEN 'policyreports.prext.demo' THEN 'prext.demo/v1alpha1'
           WHEN 'clusterpolicyreports.prext.demo' THEN 'prext.demo/v1alpha1'
       END AS report_api_version,
       CASE o.resource
           WHEN 'policyreports.wgpolicyk8s.io' THEN 'PolicyReport'
           WHEN 'clusterpolicyreports.wgpolicyk8s.io' THEN 'ClusterPolicyReport'
           WHEN 'reports.openreports.io' THEN 'Report'
           WHEN 'clusterreports.openreports.io' THEN 'ClusterReport'
           WHEN 'ephemeralreports.reports.kyverno.io' THEN 'EphemeralReport'
           WHEN 'clusterephemeralreports.reports.kyverno.io' THEN 'ClusterEphemeralReport'
           WHEN 'policyreports.prext.demo' THEN 'PolicyReport'
           WHEN 'clusterpolicyreports.prext.demo' THEN 'ClusterPolicyReport'
       END AS report_kind,
       o.resource, o.namespace, o.name AS report, o.uid AS report_uid,
       r.idx, r.policy, r.rule, r.result, r.severity,
       CASE lower(r.severity)
           WHEN 'critical' THEN 5 WHEN 'high' THEN 4 WHEN 'medium' THEN 3
           WHEN 'low' THEN 2 WHEN 'info' THEN 1 ELSE 0
       END AS severity_rank,
       r.category, r.source, r.scored, r.timestamp,
       CASE WHEN r.timestamp IS NOT NULL
            THEN strftime('%Y-%m-%dT%H:%M:%SZ', r.timestamp, 'unixepoch') END AS timestamp_utc,
       r.message, r.properties, r.resources,
       r.subject_api_version, r.subject_kind, r.subject_namespace, r.subject_name,
       CASE WHEN r.subject_uid IS NULL THEN o.scope_uid WHEN typeof(r.subject_uid) = 'text' THEN r.subject_uid END AS subject_uid
FROM results AS r JOIN objects AS o ON o.id = r.object_id;
