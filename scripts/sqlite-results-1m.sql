-- A synthetic 1,000,000-result SQLite store for reading query plans and their CPU in the sqlite3
-- shell (BENCHMARKS.md, "Filters in combination, session 9"): 50,000 reports of 20 results in
-- the proportions of `prext-bench --results` (crates/prext-bench/src/results.rs): Kyverno,
-- Trivy and kube-bench reports 4:4:2 over 500 namespaces, CVSS scores 0.0-10.0 with severity
-- and result following them, Trivy messages naming one of six packages. Not the benchmark's
-- store (bodies are '{}', messages and properties shorter): 590 MB instead of 1.6 GB; same
-- match counts within 1 %. Apply the migrations first, then this file:
--   for f in crates/prext-store/src/sqlite/migrations/*.sql; do sqlite3 DB < "$f"; done
--   sqlite3 DB < scripts/sqlite-results-1m.sql
PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-200000;
BEGIN;
WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i+1 FROM s WHERE i < 49999)
INSERT INTO objects (id, resource, namespace, name, uid, revision, created, body)
SELECT i+1, 'policyreports.wgpolicyk8s.io', printf('team-%03d', i % 500),
  CASE WHEN i % 10 < 4 THEN printf('kyverno-app-%06d', i) WHEN i % 10 < 8 THEN printf('trivy-vuln-app-%06d', i) ELSE printf('kube-bench-app-%06d', i) END,
  printf('uid-%d', i), i+1, '2024-01-01T00:00:00Z', '{}' FROM s;
CREATE TEMP TABLE g AS
WITH RECURSIVE j(j) AS (SELECT 0 UNION ALL SELECT j+1 FROM j WHERE j < 19)
SELECT o.id AS object_id, j.j AS idx, (o.id - 1) % 10 AS kind, o.namespace AS ns, printf('app-%06d', o.id - 1) AS pod,
  abs(random()) % 101 AS score10, abs(random()) % 5 AS r5, abs(random()) % 3 AS r3, abs(random()) % 4 AS r4,
  abs(random()) % 6 AS pkg, abs(random()) % 7 AS yr, abs(random()) % 40000 AS cve
FROM objects o CROSS JOIN j;
INSERT INTO results (object_id, idx, policy, rule, result, severity, category, source, scored, timestamp, message, properties, resources, subject_api_version, subject_kind, subject_namespace, subject_name)
SELECT object_id, idx,
  CASE WHEN kind < 4 THEN printf('pss-policy-%02d', idx % 17)
       WHEN kind < 8 THEN printf('CVE-20%02d-%05d', 18 + yr, cve)
       ELSE printf('kb-%d.%d', (object_id * 7 + idx) % 121 / 10, (object_id * 7 + idx) % 121) END,
  CASE WHEN kind < 4 THEN printf('rule-%02d', idx % 17) WHEN kind < 8 THEN NULL ELSE printf('check-%d', (object_id * 7 + idx) % 121) END,
  CASE WHEN kind < 4 THEN (CASE WHEN r5 = 0 THEN 'fail' ELSE 'pass' END)
       WHEN kind < 8 THEN (CASE WHEN score10 >= 70 THEN 'fail' ELSE 'warn' END)
       ELSE (CASE (object_id * 7 + idx) % 3 WHEN 0 THEN 'fail' WHEN 1 THEN 'warn' ELSE 'pass' END) END,
  CASE WHEN kind < 4 THEN (CASE WHEN r3 = 0 THEN 'high' ELSE 'medium' END)
       WHEN kind < 8 THEN (CASE WHEN score10 >= 90 THEN 'critical' WHEN score10 >= 70 THEN 'high' WHEN score10 >= 40 THEN 'medium' ELSE 'low' END)
       ELSE (CASE r4 WHEN 0 THEN 'critical' WHEN 1 THEN 'high' WHEN 2 THEN 'medium' ELSE 'low' END) END,
  CASE WHEN kind < 4 THEN 'Pod Security Standards (Baseline)' WHEN kind < 8 THEN 'Vulnerability Scan' ELSE 'Worker Node Security Configuration' END,
  CASE WHEN kind < 4 THEN 'kyverno' WHEN kind < 8 THEN 'Trivy Vulnerability' ELSE 'kube-bench' END,
  NULL, 1700000000 + (object_id - 1) % 86400,
  CASE WHEN kind < 4 THEN printf('validation rule ''rule-%02d'' passed. Privileged mode is disallowed. The fields spec.containers[*].securityContext.privileged must be unset or set to false.', idx % 17)
       WHEN kind < 8 THEN printf('%s: vulnerability CVE-20%02d-%05d in the installed version', CASE pkg WHEN 0 THEN 'openssl' WHEN 1 THEN 'libcurl' WHEN 2 THEN 'busybox' WHEN 3 THEN 'apk-tools' WHEN 4 THEN 'zlib' ELSE 'glibc' END, 18 + yr, cve)
       ELSE printf('Ensure that the --anonymous-auth argument is set to false (check %d). Remediation: edit the kubelet service file and set the parameter.', (object_id * 7 + idx) % 121) END,
  CASE WHEN kind < 8 AND kind >= 4 THEN printf('{"score":"%.1f","resource":"pkg","installedVersion":"1.1.1i-r0","fixedVersion":"1.1.1j-r0","primaryLink":"https://avd.aquasec.com/nvd/cve-20%02d-%05d"}', score10 / 10.0, 18 + yr, cve) ELSE '{"index":"1.1"}' END,
  printf('[{"apiVersion":"v1","kind":"Pod","name":"%s","namespace":"%s"}]', pod, ns),
  'v1', 'Pod', ns, pod
FROM g ORDER BY object_id, idx;
INSERT INTO result_numbers (object_id, idx, key, value, result, severity)
SELECT object_id, idx, 'score', score10 / 10.0, CASE WHEN score10 >= 70 THEN 'fail' ELSE 'warn' END,
  CASE WHEN score10 >= 90 THEN 'critical' WHEN score10 >= 70 THEN 'high' WHEN score10 >= 40 THEN 'medium' ELSE 'low' END
FROM g WHERE kind >= 4 AND kind < 8;
INSERT INTO result_counts (object_id, result, severity, source, n)
SELECT object_id, coalesce(result,''), coalesce(severity,''), coalesce(source,''), count(*) FROM results GROUP BY 1,2,3,4;
COMMIT;
ANALYZE;
