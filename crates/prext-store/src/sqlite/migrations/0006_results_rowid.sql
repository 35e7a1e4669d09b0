-- prext SQLite schema, version 6: result rows back in a rowid table.
--
-- Version 3 made `results` a WITHOUT ROWID table. In such a table every row is a key of an
-- index b-tree: interior pages hold whole rows as dividers, and a search that meets a divider
-- whose row overflows its page reads the whole row to compare keys. One result with a 1-3 MiB
-- message next to another report's rows made deleting that report's 50,000 rows take 28-86 s
-- instead of 0.5 s (the single writer, and so every write, waited meanwhile). In a rowid table
-- interior pages hold only integer keys and large rows cost their own reads only;
-- (object_id, idx) stays the primary key, as a unique index.
-- Indexes and analyst views are recreated unchanged.

DROP VIEW report_results;
DROP VIEW reports_v1;
DROP VIEW results_v1;

CREATE TABLE results_v4 (
    object_id           INTEGER NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    -- Position in the report's results array (0-based).
    idx                 INTEGER NOT NULL,
    policy              TEXT,
    rule                TEXT,
    -- 'pass' | 'fail' | 'warn' | 'error' | 'skip' (as written).
    result              TEXT,
    severity            TEXT,
    category            TEXT,
    source              TEXT,
    -- 0/1, NULL when absent.
    scored              INTEGER,
    -- timestamp.seconds (Unix time), NULL when absent.
    timestamp           INTEGER,
    message             TEXT,
    -- properties as a JSON object of strings: json_extract(properties, '$.score').
    properties          TEXT    NOT NULL DEFAULT '{}',
    -- resources as a JSON array of object references.
    resources           TEXT    NOT NULL DEFAULT '[]',
    -- The result's subject: its first resource, else the report's scope.
    subject_api_version TEXT,
    subject_kind        TEXT,
    subject_namespace   TEXT,
    subject_name        TEXT,
    subject_uid         TEXT,
    PRIMARY KEY (object_id, idx)
);
INSERT INTO results_v4 (object_id, idx, policy, rule, result, severity, category, source, scored,
                        timestamp, message, properties, resources, subject_api_version,
                        subject_kind, subject_namespace, subject_name, subject_uid)
SELECT object_id, idx, policy, rule, result, severity, category, source, scored, timestamp,
       message, properties, resources, subject_api_version, subject_kind, subject_namespace,
       subject_name, subject_uid
FROM results ORDER BY object_id, idx;

DROP TABLE results;
ALTER TABLE results_v4 RENAME TO results;

CREATE INDEX results_result_severity ON results (result, severity);
CREATE INDEX results_subject ON results (subject_namespace, subject_kind, subject_name);
CREATE INDEX results_subject_uid ON results (subject_uid);
-- Policy (and rule) filters search it; summaries by policy and counts of rule filters read it
-- instead of the result rows.
CREATE INDEX results_policy_rule_result_severity ON results (policy, rule, result, severity);

-- Results with the report they belong to: the usual starting point of an analyst's query.
CREATE VIEW report_results AS
SELECT o.resource, o.namespace, o.name AS report, o.uid AS report_uid, o.revision AS report_revision,
       r.idx, r.policy, r.rule, r.result, r.severity, r.category, r.source, r.scored, r.timestamp,
       r.message, r.properties, r.resources, r.subject_api_version, r.subject_kind,
       r.subject_namespace, r.subject_name, r.subject_uid
FROM results r JOIN objects o ON o.id = r.object_id;

-- Stable analyst view of the reports (docs/sql.md). Columns are only ever added.
CREATE VIEW reports_v1 AS
SELECT CASE o.resource
           WHEN 'policyreports.wgpolicyk8s.io' THEN 'wgpolicyk8s.io/v1alpha2'
           WHEN 'clusterpolicyreports.wgpolicyk8s.io' THEN 'wgpolicyk8s.io/v1alpha2'
           WHEN 'reports.openreports.io' THEN 'openreports.io/v1alpha1'
           WHEN 'clusterreports.openreports.io' THEN 'openreports.io/v1alpha1'
           WHEN 'ephemeralreports.reports.kyverno.io' THEN 'reports.kyverno.io/v1'
           WHEN 'clusterephemeralreports.reports.kyverno.io' THEN 'reports.kyverno.io/v1'
           WHEN 'policyreports.prext.demo' THEN 'prext.demo/v1alpha1'
           WHEN 'clusterpolicyreports.prext.demo' THEN 'prext.demo/v1alpha1'
       END AS api_version,
       CASE o.resource
           WHEN 'policyreports.wgpolicyk8s.io' THEN 'PolicyReport'
           WHEN 'clusterpolicyreports.wgpolicyk8s.io' THEN 'ClusterPolicyReport'
           WHEN 'reports.openreports.io' THEN 'Report'
           WHEN 'clusterreports.openreports.io' THEN 'ClusterReport'
           WHEN 'ephemeralreports.reports.kyverno.io' THEN 'EphemeralReport'
           WHEN 'clusterephemeralreports.reports.kyverno.io' THEN 'ClusterEphemeralReport'
           WHEN 'policyreports.prext.demo' THEN 'PolicyReport'
           WHEN 'clusterpolicyreports.prext.demo' THEN 'ClusterPolicyReport'
       END AS kind,
       o.resource, o.namespace, o.name, o.uid, o.revision AS resource_version,
       o.created AS creation_timestamp, o.labels, o.deleting,
       (SELECT count(*) FROM results AS r WHERE r.object_id = o.id) AS result_count,
       o.summary_pass, o.summary_fail, o.summary_warn, o.summary_error, o.summary_skip,
       o.scope_api_version, o.scope_kind, o.scope_namespace, o.scope_name, o.scope_uid
FROM objects AS o;

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
       r.subject_api_version, r.subject_kind, r.subject_namespace, r.subject_name, r.subject_uid
FROM results AS r JOIN objects AS o ON o.id = r.object_id;
