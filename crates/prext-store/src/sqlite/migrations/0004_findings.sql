-- prext SQLite schema, version 4: findings over time.
--
-- A finding is one failing result (`fail`, `warn` or `error`) identified by its subject (the
-- subject's uid, else `kind/namespace/name`), policy and rule, whichever report carries it.
-- prext records each finding in the same transaction as the write that opens, sees or resolves
-- it, with that write's time (Unix milliseconds) and revision. A finding is open while at
-- least one report carries it; when the last one drops it (the result disappears or turns
-- pass/skip, or the report is deleted) it is resolved, and a later failure of the same subject,
-- policy and rule opens a new finding (a resolved row is history and never reopens).

CREATE TABLE findings (
    id                   INTEGER PRIMARY KEY,
    -- subject_uid when not empty, else subject_kind '/' subject_namespace '/' subject_name.
    subject_key          TEXT    NOT NULL,
    -- '' when the result has none.
    policy               TEXT    NOT NULL,
    rule                 TEXT    NOT NULL,
    -- The report that carried it last: its namespace ('' for cluster-scoped reports),
    -- resource (plural.group) and name.
    namespace            TEXT    NOT NULL,
    resource             TEXT    NOT NULL,
    report               TEXT    NOT NULL,
    -- As last written: 'fail' | 'warn' | 'error', and the result's other fields.
    result               TEXT    NOT NULL,
    severity             TEXT,
    category             TEXT,
    source               TEXT,
    message              TEXT,
    subject_api_version  TEXT,
    subject_kind         TEXT,
    subject_namespace    TEXT,
    subject_name         TEXT,
    subject_uid          TEXT,
    -- The write that opened it, the last write of a report carrying it, and the write that
    -- resolved it (NULL while open): Unix time in milliseconds and revision.
    first_seen           INTEGER NOT NULL,
    first_seen_revision  INTEGER NOT NULL,
    last_seen            INTEGER NOT NULL,
    last_seen_revision   INTEGER NOT NULL,
    resolved_at          INTEGER,
    resolved_revision    INTEGER
);
-- At most one open finding per subject, policy and rule.
CREATE UNIQUE INDEX findings_open ON findings (subject_key, policy, rule) WHERE resolved_at IS NULL;
CREATE INDEX findings_namespace ON findings (namespace, first_seen);
CREATE INDEX findings_first_seen ON findings (first_seen);
CREATE INDEX findings_resolved_at ON findings (resolved_at) WHERE resolved_at IS NOT NULL;

-- Which reports carry which open findings (internal bookkeeping).
CREATE TABLE finding_carriers (
    object_id  INTEGER NOT NULL,
    finding_id INTEGER NOT NULL,
    PRIMARY KEY (object_id, finding_id)
) WITHOUT ROWID;
CREATE INDEX finding_carriers_finding ON finding_carriers (finding_id);

-- Findings of the result rows already stored: first seen now, at the current revision.
INSERT INTO findings (subject_key, policy, rule, namespace, resource, report, result, severity,
    category, source, message, subject_api_version, subject_kind, subject_namespace, subject_name,
    subject_uid, first_seen, first_seen_revision, last_seen, last_seen_revision)
SELECT k.subject_key, k.policy, k.rule, o.namespace, o.resource, o.name, r.result, r.severity,
       r.category, r.source, r.message, r.subject_api_version, r.subject_kind, r.subject_namespace,
       r.subject_name, r.subject_uid, t.now, m.revision, t.now, m.revision
FROM (SELECT CASE WHEN coalesce(subject_uid, '') <> '' THEN subject_uid
                ELSE coalesce(subject_kind, '') || '/' || coalesce(subject_namespace, '') || '/'
                     || coalesce(subject_name, '') END AS subject_key,
             coalesce(policy, '') AS policy, coalesce(rule, '') AS rule, object_id, idx,
             row_number() OVER (PARTITION BY CASE WHEN coalesce(subject_uid, '') <> '' THEN subject_uid
                ELSE coalesce(subject_kind, '') || '/' || coalesce(subject_namespace, '') || '/'
                     || coalesce(subject_name, '') END,
                 coalesce(policy, ''), coalesce(rule, '') ORDER BY object_id, idx) AS n
      FROM results WHERE result IN ('fail', 'warn', 'error')) AS k
JOIN results AS r ON r.object_id = k.object_id AND r.idx = k.idx
JOIN objects AS o ON o.id = k.object_id
CROSS JOIN meta AS m
CROSS JOIN (SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) AS now) AS t
WHERE k.n = 1 AND m.id = 1;
INSERT INTO finding_carriers (object_id, finding_id)
SELECT DISTINCT k.object_id, f.id
FROM (SELECT CASE WHEN coalesce(subject_uid, '') <> '' THEN subject_uid
                ELSE coalesce(subject_kind, '') || '/' || coalesce(subject_namespace, '') || '/'
                     || coalesce(subject_name, '') END AS subject_key,
             coalesce(policy, '') AS policy, coalesce(rule, '') AS rule, object_id
      FROM results WHERE result IN ('fail', 'warn', 'error')) AS k
JOIN findings AS f ON f.subject_key = k.subject_key AND f.policy = k.policy AND f.rule = k.rule;

-- The stable analyst view of findings (docs/sql.md).
CREATE VIEW findings_v1 AS
SELECT f.id, f.namespace, f.resource, f.report, f.policy, f.rule, f.result, f.severity,
       CASE lower(coalesce(f.severity, ''))
           WHEN 'critical' THEN 5 WHEN 'high' THEN 4 WHEN 'medium' THEN 3
           WHEN 'low' THEN 2 WHEN 'info' THEN 1 ELSE 0
       END AS severity_rank,
       f.category, f.source, f.message,
       f.subject_api_version, f.subject_kind, f.subject_namespace, f.subject_name, f.subject_uid,
       f.first_seen, strftime('%Y-%m-%dT%H:%M:%fZ', f.first_seen / 1000.0, 'unixepoch') AS first_seen_utc,
       f.last_seen, strftime('%Y-%m-%dT%H:%M:%fZ', f.last_seen / 1000.0, 'unixepoch') AS last_seen_utc,
       f.resolved_at,
       CASE WHEN f.resolved_at IS NOT NULL
           THEN strftime('%Y-%m-%dT%H:%M:%fZ', f.resolved_at / 1000.0, 'unixepoch') END AS resolved_at_utc,
       f.resolved_at IS NULL AS open
FROM findings f;
