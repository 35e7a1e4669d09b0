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
