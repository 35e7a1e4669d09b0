-- prext PostgreSQL schema, version 1.
--
-- The same tables and columns as the SQLite schema (docs/schema.md), plus a `cluster` column
-- that keys every table: one database can hold the reports of a fleet of Kubernetes clusters,
-- each prext seeing only its own. prext is the only writer; see docs/postgres.md.
--
-- Keys are compared byte-wise (COLLATE "C"), whatever the database's default collation, so
-- lists come out in the order Kubernetes clients expect and keyset pagination uses the index.

-- Per cluster: the revision counter. Every write transaction locks its cluster's row first, so
-- revisions become visible in commit order across all replicas.
CREATE TABLE meta (
    cluster            text COLLATE "C" PRIMARY KEY,
    -- Newest committed revision (metadata.resourceVersion of the latest write). Never decreases.
    revision           bigint NOT NULL DEFAULT 0,
    -- Compaction point: changes with revision <= compacted_revision were dropped.
    compacted_revision bigint NOT NULL DEFAULT 0
);

-- One row per stored report (every served kind).
CREATE TABLE objects (
    id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    cluster           text COLLATE "C" NOT NULL,
    -- 'plural.group', e.g. 'policyreports.wgpolicyk8s.io'.
    resource          text COLLATE "C" NOT NULL,
    -- '' for cluster-scoped kinds.
    namespace         text COLLATE "C" NOT NULL,
    name              text COLLATE "C" NOT NULL,
    -- metadata.uid
    uid               text NOT NULL,
    -- metadata.resourceVersion: the revision of the last write of this object.
    revision          bigint NOT NULL,
    -- metadata.creationTimestamp, RFC 3339 (created::timestamptz to compute with it).
    created           text NOT NULL,
    -- metadata.labels: labels->>'app.kubernetes.io/name', labels @> '{"team": "a"}'.
    labels            jsonb NOT NULL DEFAULT '{}',
    -- metadata.deletionTimestamp is set (the report waits for its finalizers).
    deleting          boolean NOT NULL DEFAULT false,
    -- summary counts as written by the producer (they may disagree with the results table).
    summary_pass      bigint NOT NULL DEFAULT 0,
    summary_fail      bigint NOT NULL DEFAULT 0,
    summary_warn      bigint NOT NULL DEFAULT 0,
    summary_error     bigint NOT NULL DEFAULT 0,
    summary_skip      bigint NOT NULL DEFAULT 0,
    -- The report's scope (for Kyverno ephemeral reports: spec.owner); NULL when absent.
    scope_api_version text,
    scope_kind        text,
    scope_namespace   text,
    scope_name        text,
    scope_uid         text,
    -- The exact JSON served to clients, resourceVersion included (text, not jsonb, to keep
    -- it byte for byte; body::jsonb to query it).
    body              text NOT NULL,
    UNIQUE (cluster, resource, namespace, name)
);
CREATE INDEX objects_namespace ON objects (cluster, namespace, resource);
CREATE INDEX objects_scope ON objects (cluster, scope_kind, scope_namespace, scope_name);
CREATE INDEX objects_labels ON objects USING gin (labels);

-- One row per entry of a report's results, rewritten with the report in the same transaction.
-- Indexes lead with the question's columns and end with the cluster, so that both fleet-wide
-- and per-cluster questions use them.
CREATE TABLE results (
    object_id           bigint NOT NULL REFERENCES objects (id) ON DELETE CASCADE,
    -- Position in the report's results array (0-based).
    idx                 integer NOT NULL,
    -- The report's cluster (objects.cluster), repeated for per-cluster questions.
    cluster             text COLLATE "C" NOT NULL,
    policy              text,
    rule                text,
    -- 'pass' | 'fail' | 'warn' | 'error' | 'skip' (as written).
    result              text,
    severity            text,
    category            text,
    source              text,
    -- NULL when absent.
    scored              boolean,
    -- timestamp.seconds (Unix time), NULL when absent: to_timestamp("timestamp").
    "timestamp"         bigint,
    message             text,
    -- properties as a JSON object of strings: properties->>'score'.
    properties          jsonb NOT NULL DEFAULT '{}',
    -- resources as a JSON array of object references.
    resources           jsonb NOT NULL DEFAULT '[]',
    -- The result's subject: its first resource, else the report's scope.
    subject_api_version text,
    subject_kind        text,
    subject_namespace   text,
    subject_name        text,
    subject_uid         text,
    PRIMARY KEY (object_id, idx)
);
CREATE INDEX results_result_severity ON results (result, severity, cluster);
CREATE INDEX results_severity ON results (severity, cluster);
CREATE INDEX results_policy_rule ON results (policy, rule, cluster);
CREATE INDEX results_subject ON results (subject_namespace, subject_kind, subject_name, cluster);
CREATE INDEX results_subject_uid ON results (subject_uid);

-- The watch history: one row per committed write, in revision order. Compaction drops old rows.
CREATE TABLE changes (
    cluster     text COLLATE "C" NOT NULL,
    revision    bigint NOT NULL,
    event       text NOT NULL CHECK (event IN ('ADDED', 'MODIFIED', 'DELETED')),
    resource    text COLLATE "C" NOT NULL,
    namespace   text COLLATE "C" NOT NULL,
    name        text COLLATE "C" NOT NULL,
    -- The object after the change; for DELETED, its last state stamped with this revision.
    body        text NOT NULL,
    -- Labels after the change (for DELETED: the labels it had).
    labels      jsonb NOT NULL,
    -- Labels before the change; NULL for ADDED.
    prev_labels jsonb,
    PRIMARY KEY (cluster, revision)
);

-- Results with the report they belong to: the usual starting point of an analyst's query.
CREATE VIEW report_results AS
SELECT o.cluster, o.resource, o.namespace, o.name AS report, o.uid AS report_uid,
       o.revision AS report_revision,
       r.idx, r.policy, r.rule, r.result, r.severity, r.category, r.source, r.scored, r."timestamp",
       r.message, r.properties, r.resources, r.subject_api_version, r.subject_kind,
       r.subject_namespace, r.subject_name, r.subject_uid
FROM results r JOIN objects o ON o.id = r.object_id;

COMMENT ON TABLE meta IS 'prext: per cluster, the newest revision and the compaction point';
COMMENT ON TABLE objects IS 'prext: one row per stored report; body is the exact JSON served';
COMMENT ON TABLE results IS 'prext: one row per entry of a report''s results';
COMMENT ON TABLE changes IS 'prext: the watch history, one row per committed write';
COMMENT ON VIEW report_results IS 'prext: results joined with their report';
