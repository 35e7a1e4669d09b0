-- prext SQLite schema, version 1.
--
-- prext is the only writer. Analysts may read these tables (read-only connections) while the
-- server runs; see docs/schema.md for the meaning of every column and example queries.

-- The store's global state: one row.
CREATE TABLE meta (
    id                 INTEGER PRIMARY KEY CHECK (id = 1),
    -- Newest committed revision (metadata.resourceVersion of the latest write). Never decreases.
    revision           INTEGER NOT NULL,
    -- Compaction point: changes with revision <= compacted_revision were dropped. A watch can
    -- resume from any revision >= compacted_revision.
    compacted_revision INTEGER NOT NULL
);
INSERT INTO meta (id, revision, compacted_revision) VALUES (1, 0, 0);

-- One row per stored report (every served kind).
CREATE TABLE objects (
    id                INTEGER PRIMARY KEY,
    -- 'plural.group', e.g. 'policyreports.wgpolicyk8s.io'.
    resource          TEXT    NOT NULL,
    -- '' for cluster-scoped kinds.
    namespace         TEXT    NOT NULL,
    name              TEXT    NOT NULL,
    -- metadata.uid
    uid               TEXT    NOT NULL,
    -- metadata.resourceVersion: the revision of the last write of this object.
    revision          INTEGER NOT NULL,
    -- metadata.creationTimestamp, RFC 3339.
    created           TEXT    NOT NULL,
    -- metadata.labels as a JSON object: json_extract(labels, '$."app.kubernetes.io/name"').
    labels            TEXT    NOT NULL DEFAULT '{}',
    -- 1 when metadata.deletionTimestamp is set (the report waits for its finalizers).
    deleting          INTEGER NOT NULL DEFAULT 0 CHECK (deleting IN (0, 1)),
    -- summary counts as written by the producer (they may disagree with the results table).
    summary_pass      INTEGER NOT NULL DEFAULT 0,
    summary_fail      INTEGER NOT NULL DEFAULT 0,
    summary_warn      INTEGER NOT NULL DEFAULT 0,
    summary_error     INTEGER NOT NULL DEFAULT 0,
    summary_skip      INTEGER NOT NULL DEFAULT 0,
    -- The report's scope (for Kyverno ephemeral reports: spec.owner); NULL when absent.
    scope_api_version TEXT,
    scope_kind        TEXT,
    scope_namespace   TEXT,
    scope_name        TEXT,
    scope_uid         TEXT,
    -- The exact JSON served to clients, resourceVersion included.
    body              TEXT    NOT NULL,
    UNIQUE (resource, namespace, name)
);
CREATE INDEX objects_namespace ON objects (namespace, resource);
CREATE INDEX objects_scope ON objects (scope_kind, scope_namespace, scope_name);

-- One row per entry of a report's results, rewritten with the report in the same transaction.
CREATE TABLE results (
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
CREATE INDEX results_result_severity ON results (result, severity);
CREATE INDEX results_policy_rule ON results (policy, rule);
CREATE INDEX results_subject ON results (subject_namespace, subject_kind, subject_name);
CREATE INDEX results_subject_uid ON results (subject_uid);

-- The watch history: one row per committed write, in revision order. Compaction drops old rows.
CREATE TABLE changes (
    revision    INTEGER PRIMARY KEY,
    event       TEXT    NOT NULL CHECK (event IN ('ADDED', 'MODIFIED', 'DELETED')),
    resource    TEXT    NOT NULL,
    namespace   TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    -- The object after the change; for DELETED, its last state stamped with this revision.
    body        TEXT    NOT NULL,
    -- Labels after the change (for DELETED: the labels it had).
    labels      TEXT    NOT NULL,
    -- Labels before the change; NULL for ADDED.
    prev_labels TEXT
);

-- Results with the report they belong to: the usual starting point of an analyst's query.
CREATE VIEW report_results AS
SELECT o.resource, o.namespace, o.name AS report, o.uid AS report_uid, o.revision AS report_revision,
       r.idx, r.policy, r.rule, r.result, r.severity, r.category, r.source, r.scored, r.timestamp,
       r.message, r.properties, r.resources, r.subject_api_version, r.subject_kind,
       r.subject_namespace, r.subject_name, r.subject_uid
FROM results r JOIN objects o ON o.id = r.object_id;
