-- prext SQLite schema, version 2: result queries and the analyst views.
--
-- Adds what the result query API (results.prext.io) needs to answer in milliseconds over
-- millions of results, and two stable, documented views for analysts (docs/sql.md).

-- Report order: `ORDER BY namespace, name, resource` walks this index instead of sorting.
CREATE INDEX objects_order ON objects (namespace, name, resource);

-- Numeric properties, one row per (result, key) whose value is a number ("9.8", "8"), kept
-- by the triggers below and removed with their result (ON DELETE CASCADE), so that
-- `properties.score >= 8` is an index range instead of a JSON scan of every result.
CREATE TABLE result_numbers (
    object_id INTEGER NOT NULL,
    idx       INTEGER NOT NULL,
    -- The property key, as written.
    key       TEXT    NOT NULL,
    -- Its value as a number.
    value     REAL    NOT NULL,
    PRIMARY KEY (object_id, idx, key),
    FOREIGN KEY (object_id, idx) REFERENCES results (object_id, idx) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX result_numbers_key_value ON result_numbers (key, value);

-- Each report's results counted by (result, severity, source), kept by the triggers below:
-- summaries and metrics by namespace, report kind or source read these few rows per report
-- instead of every result. A missing value is counted under ''.
CREATE TABLE result_counts (
    object_id INTEGER NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    result    TEXT    NOT NULL,
    severity  TEXT    NOT NULL,
    source    TEXT    NOT NULL,
    n         INTEGER NOT NULL,
    PRIMARY KEY (object_id, result, severity, source)
) WITHOUT ROWID;

CREATE TRIGGER results_counts_insert AFTER INSERT ON results
BEGIN
    INSERT INTO result_counts (object_id, result, severity, source, n)
    VALUES (new.object_id, coalesce(new.result, ''), coalesce(new.severity, ''),
            coalesce(new.source, ''), 1)
    ON CONFLICT (object_id, result, severity, source) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER results_counts_delete AFTER DELETE ON results
BEGIN
    UPDATE result_counts SET n = n - 1
    WHERE object_id = old.object_id AND result = coalesce(old.result, '')
      AND severity = coalesce(old.severity, '') AND source = coalesce(old.source, '');
    DELETE FROM result_counts
    WHERE object_id = old.object_id AND result = coalesce(old.result, '')
      AND severity = coalesce(old.severity, '') AND source = coalesce(old.source, '')
      AND n <= 0;
END;

INSERT INTO result_counts (object_id, result, severity, source, n)
SELECT object_id, coalesce(result, ''), coalesce(severity, ''), coalesce(source, ''), count(*)
FROM results GROUP BY 1, 2, 3, 4;

-- Summaries by policy read this instead of the result rows.
CREATE INDEX results_policy_result_severity ON results (policy, result, severity);

CREATE TRIGGER results_numbers_insert AFTER INSERT ON results
WHEN new.properties <> '{}'
BEGIN
    INSERT OR REPLACE INTO result_numbers (object_id, idx, key, value)
    SELECT new.object_id, new.idx, je.key,
           CASE WHEN je.type IN ('integer', 'real') THEN je.value ELSE CAST(je.value AS REAL) END
    FROM json_each(new.properties) AS je
    WHERE je.type IN ('integer', 'real')
       OR (je.type = 'text' AND json_valid(je.value)
           AND json_type(je.value) IN ('integer', 'real'));
END;

-- Existing results (a database created by schema version 1).
INSERT OR REPLACE INTO result_numbers (object_id, idx, key, value)
SELECT r.object_id, r.idx, je.key,
       CASE WHEN je.type IN ('integer', 'real') THEN je.value ELSE CAST(je.value AS REAL) END
FROM results AS r, json_each(r.properties) AS je
WHERE r.properties <> '{}'
  AND (je.type IN ('integer', 'real')
       OR (je.type = 'text' AND json_valid(je.value)
           AND json_type(je.value) IN ('integer', 'real')));

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
