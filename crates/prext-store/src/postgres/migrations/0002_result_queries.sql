-- prext PostgreSQL schema, version 2: result queries and the analyst views.
--
-- Adds what the result query API (results.prext.io) reads in report order, and two stable,
-- documented views for analysts (docs/sql.md): the SQLite views plus `cluster`, with jsonb
-- for the JSON columns and booleans for `deleting` and `scored`.

-- Report order: `ORDER BY namespace, name, resource` within a cluster walks this index.
CREATE INDEX objects_order ON objects (cluster, namespace, name, resource);

-- Stable analyst view of the reports (docs/sql.md). Columns are only ever added.
CREATE VIEW reports_v1 AS
SELECT o.cluster,
       CASE o.resource
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
SELECT o.cluster,
       CASE o.resource
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
       CASE translate(r.severity, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
           WHEN 'critical' THEN 5 WHEN 'high' THEN 4 WHEN 'medium' THEN 3
           WHEN 'low' THEN 2 WHEN 'info' THEN 1 ELSE 0
       END AS severity_rank,
       r.category, r.source, r.scored, r."timestamp",
       to_char(to_timestamp(r."timestamp") AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
           AS timestamp_utc,
       r.message, r.properties, r.resources,
       r.subject_api_version, r.subject_kind, r.subject_namespace, r.subject_name, r.subject_uid
FROM results AS r JOIN objects AS o ON o.id = r.object_id;

COMMENT ON VIEW reports_v1 IS 'prext: stable analyst view, one row per report (docs/sql.md)';
COMMENT ON VIEW results_v1 IS 'prext: stable analyst view, one row per result with its report (docs/sql.md)';
