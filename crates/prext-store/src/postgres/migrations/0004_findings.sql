-- prext PostgreSQL schema, version 4: findings over time (the SQLite schema's version 4, plus
-- `cluster`; see docs/schema.md).
--
-- A finding is one failing result (fail, warn or error) identified by its subject (the
-- subject's uid, else kind/namespace/name), policy and rule, whichever report carries it.
-- prext records it in the transaction of the write that opens, sees or resolves it, with that
-- write's time (Unix milliseconds) and revision: prext_record_findings below, called after a
-- report's result rows are written or removed. A finding is open while at least one report
-- carries it; a later failure of a resolved finding's subject, policy and rule opens a new one.

CREATE TABLE findings (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cluster              text COLLATE "C" NOT NULL,
    -- subject_uid when not empty, else subject_kind '/' subject_namespace '/' subject_name.
    subject_key          text COLLATE "C" NOT NULL,
    policy               text COLLATE "C" NOT NULL,
    rule                 text COLLATE "C" NOT NULL,
    -- The report that carried it last.
    namespace            text COLLATE "C" NOT NULL,
    resource             text COLLATE "C" NOT NULL,
    report               text COLLATE "C" NOT NULL,
    result               text NOT NULL,
    severity             text,
    category             text,
    source               text,
    message              text,
    subject_api_version  text,
    subject_kind         text,
    subject_namespace    text,
    subject_name         text,
    subject_uid          text,
    -- Unix milliseconds and revisions of the writes that opened, last saw and resolved it.
    first_seen           bigint NOT NULL,
    first_seen_revision  bigint NOT NULL,
    last_seen            bigint NOT NULL,
    last_seen_revision   bigint NOT NULL,
    resolved_at          bigint,
    resolved_revision    bigint
);
CREATE UNIQUE INDEX findings_open ON findings (cluster, subject_key, policy, rule) WHERE resolved_at IS NULL;
CREATE INDEX findings_namespace ON findings (cluster, namespace, first_seen);
CREATE INDEX findings_first_seen ON findings (cluster, first_seen);
CREATE INDEX findings_resolved_at ON findings (cluster, resolved_at) WHERE resolved_at IS NOT NULL;

-- Which reports carry which open findings (internal bookkeeping).
CREATE TABLE finding_carriers (
    object_id  bigint NOT NULL,
    finding_id bigint NOT NULL,
    PRIMARY KEY (object_id, finding_id)
);
CREATE INDEX finding_carriers_finding ON finding_carriers (finding_id);

-- Recomputes the findings the report p_object carries from its result rows (none when it was
-- deleted), at p_at (Unix ms) and p_revision.
CREATE FUNCTION prext_record_findings(p_cluster text, p_object bigint, p_at bigint, p_revision bigint)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    carried bigint[];
BEGIN
    WITH gone AS (DELETE FROM finding_carriers WHERE object_id = p_object RETURNING finding_id)
    SELECT coalesce(array_agg(finding_id), '{}') INTO carried FROM gone;
    -- The report's failing rows, one per finding key (the first by position).
    WITH cur AS (
            SELECT DISTINCT ON (1, 2, 3)
                   CASE WHEN coalesce(r.subject_uid, '') <> '' THEN r.subject_uid
                        ELSE coalesce(r.subject_kind, '') || '/' || coalesce(r.subject_namespace, '')
                             || '/' || coalesce(r.subject_name, '') END AS subject_key,
                   coalesce(r.policy, '') AS policy, coalesce(r.rule, '') AS rule, r.idx
            FROM results r
            WHERE r.object_id = p_object AND r.result IN ('fail', 'warn', 'error')
            ORDER BY 1, 2, 3, r.idx)
    INSERT INTO findings AS f (cluster, subject_key, policy, rule, namespace, resource, report,
        result, severity, category, source, message, subject_api_version, subject_kind,
        subject_namespace, subject_name, subject_uid, first_seen, first_seen_revision,
        last_seen, last_seen_revision)
    SELECT p_cluster, c.subject_key, c.policy, c.rule, o.namespace, o.resource, o.name, r.result,
           r.severity, r.category, r.source, r.message, r.subject_api_version, r.subject_kind,
           r.subject_namespace, r.subject_name, r.subject_uid, p_at, p_revision, p_at, p_revision
    FROM cur c JOIN results r ON r.object_id = p_object AND r.idx = c.idx
         JOIN objects o ON o.id = p_object
    ON CONFLICT (cluster, subject_key, policy, rule) WHERE resolved_at IS NULL DO UPDATE SET
        namespace = excluded.namespace, resource = excluded.resource, report = excluded.report,
        result = excluded.result, severity = excluded.severity, category = excluded.category,
        source = excluded.source, message = excluded.message,
        subject_api_version = excluded.subject_api_version, subject_kind = excluded.subject_kind,
        subject_namespace = excluded.subject_namespace, subject_name = excluded.subject_name,
        subject_uid = excluded.subject_uid, last_seen = excluded.last_seen,
        last_seen_revision = excluded.last_seen_revision;
    IF FOUND THEN
        WITH cur AS (
            SELECT DISTINCT ON (1, 2, 3)
                   CASE WHEN coalesce(r.subject_uid, '') <> '' THEN r.subject_uid
                        ELSE coalesce(r.subject_kind, '') || '/' || coalesce(r.subject_namespace, '')
                             || '/' || coalesce(r.subject_name, '') END AS subject_key,
                   coalesce(r.policy, '') AS policy, coalesce(r.rule, '') AS rule, r.idx
            FROM results r
            WHERE r.object_id = p_object AND r.result IN ('fail', 'warn', 'error')
            ORDER BY 1, 2, 3, r.idx)
        INSERT INTO finding_carriers (object_id, finding_id)
        SELECT p_object, f.id FROM cur c JOIN findings f
            ON f.cluster = p_cluster AND f.subject_key = c.subject_key AND f.policy = c.policy
           AND f.rule = c.rule AND f.resolved_at IS NULL;
    END IF;
    IF cardinality(carried) > 0 THEN
        UPDATE findings f SET resolved_at = p_at, resolved_revision = p_revision
        WHERE f.id = ANY (carried) AND f.resolved_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM finding_carriers c WHERE c.finding_id = f.id);
    END IF;
END
$$;

-- Findings of the result rows already stored: first seen now, at each cluster's revision.
INSERT INTO findings (cluster, subject_key, policy, rule, namespace, resource, report, result,
    severity, category, source, message, subject_api_version, subject_kind, subject_namespace,
    subject_name, subject_uid, first_seen, first_seen_revision, last_seen, last_seen_revision)
SELECT o.cluster, k.subject_key, k.policy, k.rule, o.namespace, o.resource, o.name, r.result,
       r.severity, r.category, r.source, r.message, r.subject_api_version, r.subject_kind,
       r.subject_namespace, r.subject_name, r.subject_uid, t.now, m.revision, t.now, m.revision
FROM (SELECT cluster, CASE WHEN coalesce(subject_uid, '') <> '' THEN subject_uid
                ELSE coalesce(subject_kind, '') || '/' || coalesce(subject_namespace, '') || '/'
                     || coalesce(subject_name, '') END AS subject_key,
             coalesce(policy, '') AS policy, coalesce(rule, '') AS rule, object_id, idx,
             row_number() OVER (PARTITION BY cluster, CASE WHEN coalesce(subject_uid, '') <> '' THEN subject_uid
                ELSE coalesce(subject_kind, '') || '/' || coalesce(subject_namespace, '') || '/'
                     || coalesce(subject_name, '') END,
                 coalesce(policy, ''), coalesce(rule, '') ORDER BY object_id, idx) AS n
      FROM results WHERE result IN ('fail', 'warn', 'error')) AS k
JOIN results AS r ON r.object_id = k.object_id AND r.idx = k.idx
JOIN objects AS o ON o.id = k.object_id
JOIN meta AS m ON m.cluster = o.cluster
CROSS JOIN (SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS now) AS t
WHERE k.n = 1;
INSERT INTO finding_carriers (object_id, finding_id)
SELECT DISTINCT k.object_id, f.id
FROM (SELECT cluster, CASE WHEN coalesce(subject_uid, '') <> '' THEN subject_uid
                ELSE coalesce(subject_kind, '') || '/' || coalesce(subject_namespace, '') || '/'
                     || coalesce(subject_name, '') END AS subject_key,
             coalesce(policy, '') AS policy, coalesce(rule, '') AS rule, object_id
      FROM results WHERE result IN ('fail', 'warn', 'error')) AS k
JOIN findings AS f ON f.cluster = k.cluster AND f.subject_key = k.subject_key AND f.policy = k.policy
 AND f.rule = k.rule AND f.resolved_at IS NULL;

-- The stable analyst view of findings (docs/sql.md).
CREATE VIEW findings_v1 AS
SELECT f.cluster, f.id, f.namespace, f.resource, f.report, f.policy, f.rule, f.result, f.severity,
       CASE translate(f.severity, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')
           WHEN 'critical' THEN 5 WHEN 'high' THEN 4 WHEN 'medium' THEN 3
           WHEN 'low' THEN 2 WHEN 'info' THEN 1 ELSE 0
       END AS severity_rank,
       f.category, f.source, f.message,
       f.subject_api_version, f.subject_kind, f.subject_namespace, f.subject_name, f.subject_uid,
       f.first_seen,
       to_char(to_timestamp(f.first_seen / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS first_seen_utc,
       f.last_seen,
       to_char(to_timestamp(f.last_seen / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS last_seen_utc,
       f.resolved_at,
       to_char(to_timestamp(f.resolved_at / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS resolved_at_utc,
       f.resolved_at IS NULL AS open
FROM findings AS f;

COMMENT ON VIEW findings_v1 IS 'prext: stable analyst view, one row per finding (docs/sql.md)';
