-- prext PostgreSQL schema, version 6: findings are indexed off the write path (the SQLite
-- schema's version 7, plus `cluster`; see docs/schema.md).
--
-- Until version 5 each write called prext_record_findings in its own transaction, which cost
-- writes with failing results 40-75 % more CPU. From version 6 a write only stores, in its
-- change-log row, its time and what it did to the report's result rows; a findings indexer
-- (one per cluster at a time, whichever replica holds the lock of its cursor row) follows the
-- change log by revision and applies each change in order with prext_index_change below: the
-- failing rows of a rewritten report are read from the change's body.
--
-- written_at: the write's time, Unix milliseconds (the findings' first_seen, last_seen and
-- resolved_at). results_flag: 0 the update kept the report's result rows (its findings are
-- only seen again), 1 the rows were rewritten and none fails, 2 the rows were rewritten and
-- some fail (fail, warn or error); NULL for deletes and for changes written before version 6.
ALTER TABLE changes ADD COLUMN written_at bigint, ADD COLUMN results_flag smallint;

-- The newest revision whose change the indexer has applied, per cluster, written in the
-- transaction of the findings it wrote; compaction keeps every change above it. The findings
-- recorded so far (in the writes' transactions) are up to date: it starts at the current
-- revision (a cluster added later starts at its own, see schema.rs).
CREATE TABLE findings_cursor (
    cluster  text COLLATE "C" PRIMARY KEY,
    revision bigint NOT NULL
);
INSERT INTO findings_cursor (cluster, revision) SELECT cluster, revision FROM meta;

-- Carriers are known by the report's key, not its row id: the indexer may apply the change of
-- a report whose row has since been deleted.
CREATE TABLE finding_carriers_v6 (
    cluster    text COLLATE "C" NOT NULL,
    resource   text COLLATE "C" NOT NULL,
    namespace  text COLLATE "C" NOT NULL,
    name       text COLLATE "C" NOT NULL,
    finding_id bigint NOT NULL,
    PRIMARY KEY (cluster, resource, namespace, name, finding_id)
);
INSERT INTO finding_carriers_v6 (cluster, resource, namespace, name, finding_id)
SELECT o.cluster, o.resource, o.namespace, o.name, c.finding_id
FROM finding_carriers c JOIN objects o ON o.id = c.object_id;
DROP TABLE finding_carriers;
ALTER TABLE finding_carriers_v6 RENAME TO finding_carriers;
ALTER INDEX finding_carriers_v6_pkey RENAME TO finding_carriers_pkey;
CREATE INDEX finding_carriers_finding ON finding_carriers (finding_id);

DROP FUNCTION prext_record_findings(text, bigint, bigint, bigint);

-- Applies one change to the findings: p_seen, an update that kept its result rows, marks the
-- report's findings seen; otherwise the report now carries exactly the findings of p_rows
-- (a JSON array, one object per finding key, none after a delete): each is opened or marked
-- seen, and a finding it carried before that no report carries any more is resolved.
CREATE FUNCTION prext_index_change(p_cluster text, p_resource text, p_namespace text,
    p_name text, p_at bigint, p_revision bigint, p_seen boolean, p_rows jsonb)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    carried bigint[];
BEGIN
    IF p_seen THEN
        UPDATE findings SET last_seen = p_at, last_seen_revision = p_revision
        WHERE id IN (SELECT finding_id FROM finding_carriers
                     WHERE cluster = p_cluster AND resource = p_resource
                       AND namespace = p_namespace AND name = p_name);
        RETURN;
    END IF;
    WITH gone AS (
        DELETE FROM finding_carriers
        WHERE cluster = p_cluster AND resource = p_resource AND namespace = p_namespace
          AND name = p_name
        RETURNING finding_id)
    SELECT coalesce(array_agg(finding_id), '{}') INTO carried FROM gone;
    IF jsonb_array_length(p_rows) > 0 THEN
        WITH up AS (
            INSERT INTO findings AS f (cluster, subject_key, policy, rule, namespace, resource,
                report, result, severity, category, source, message, subject_api_version,
                subject_kind, subject_namespace, subject_name, subject_uid, first_seen,
                first_seen_revision, last_seen, last_seen_revision)
            SELECT p_cluster, r.subject_key, r.policy, r.rule, p_namespace, p_resource, p_name,
                   r.result, r.severity, r.category, r.source, r.message, r.subject_api_version,
                   r.subject_kind, r.subject_namespace, r.subject_name, r.subject_uid, p_at,
                   p_revision, p_at, p_revision
            FROM jsonb_to_recordset(p_rows) AS r(subject_key text, policy text, rule text,
                 result text, severity text, category text, source text, message text,
                 subject_api_version text, subject_kind text, subject_namespace text,
                 subject_name text, subject_uid text)
            ON CONFLICT (cluster, subject_key, policy, rule) WHERE resolved_at IS NULL DO UPDATE SET
                namespace = excluded.namespace, resource = excluded.resource,
                report = excluded.report, result = excluded.result, severity = excluded.severity,
                category = excluded.category, source = excluded.source, message = excluded.message,
                subject_api_version = excluded.subject_api_version,
                subject_kind = excluded.subject_kind, subject_namespace = excluded.subject_namespace,
                subject_name = excluded.subject_name, subject_uid = excluded.subject_uid,
                last_seen = excluded.last_seen, last_seen_revision = excluded.last_seen_revision
            RETURNING f.id)
        INSERT INTO finding_carriers (cluster, resource, namespace, name, finding_id)
        SELECT p_cluster, p_resource, p_namespace, p_name, id FROM up;
    END IF;
    IF cardinality(carried) > 0 THEN
        UPDATE findings f SET resolved_at = p_at, resolved_revision = p_revision
        WHERE f.id = ANY (carried) AND f.resolved_at IS NULL
          AND NOT EXISTS (SELECT 1 FROM finding_carriers c WHERE c.finding_id = f.id);
    END IF;
END
$$;
