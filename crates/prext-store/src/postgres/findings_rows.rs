//! The findings a report carries, derived in SQL from its result rows: what
//! [`crate::findings_index::carried`] derives from its body, for the findings indexer's changes
//! that are still their report's newest write (`findings.rs`).
//!
//! One finding per key (subject, policy, rule) from its first failing row (`fail`, `warn` or
//! `error`) by position, in key order compared byte-wise (COLLATE "C", as Rust compares
//! strings): `prext_index_change` opens new findings in the order of its rows. The subject key
//! is the subject's uid, else `kind/namespace/name` (an absent part empty). The rows' text
//! columns hold U+FFFD where the body had a NUL character (`result_rows.rs`), which `jsonb`
//! could not carry anyway.

/// A scalar subquery over the result rows of the object `o.id`: its findings as the JSON array
/// `prext_index_change` takes (the fields of [`crate::findings_index::Carried`]), `[]` when
/// none fails.
macro_rules! current_findings {
    () => {
        "SELECT coalesce(jsonb_agg(jsonb_build_object(
                    'subject_key', f.subject_key, 'policy', f.policy, 'rule', f.rule,
                    'result', f.result, 'severity', f.severity, 'category', f.category,
                    'source', f.source, 'message', f.message,
                    'subject_api_version', f.subject_api_version, 'subject_kind', f.subject_kind,
                    'subject_namespace', f.subject_namespace, 'subject_name', f.subject_name,
                    'subject_uid', f.subject_uid)
                ORDER BY f.subject_key, f.policy, f.rule), '[]'::jsonb)
         FROM (SELECT DISTINCT ON (k.subject_key, k.policy, k.rule)
                      k.subject_key, k.policy, k.rule, r.result, r.severity, r.category, r.source,
                      r.message, r.subject_api_version, r.subject_kind, r.subject_namespace,
                      r.subject_name, r.subject_uid
               FROM results r
               CROSS JOIN LATERAL (SELECT
                   (CASE WHEN r.subject_uid <> '' THEN r.subject_uid
                         ELSE coalesce(r.subject_kind, '') || '/' || coalesce(r.subject_namespace, '')
                              || '/' || coalesce(r.subject_name, '') END) COLLATE \"C\" AS subject_key,
                   coalesce(r.policy, '') COLLATE \"C\" AS policy,
                   coalesce(r.rule, '') COLLATE \"C\" AS rule) k
               WHERE r.object_id = o.id AND r.result IN ('fail', 'warn', 'error')
               ORDER BY k.subject_key, k.policy, k.rule, r.idx) f"
    };
}

pub(super) use current_findings;
