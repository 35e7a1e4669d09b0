//! Checks of the embedded mode: the plain manifest `deploy/manifests/prext-embedded.yaml`
//! (one replica in a StatefulSet on a PersistentVolumeClaim, a budget that lets a drain
//! through, no cert-manager, no private key), the chart templates that make it, the
//! defaults that make `helm install` with no values the embedded mode with the chart's own
//! certificates, and both manifests against the Kubernetes 1.32 schemas.

use std::collections::BTreeSet;

use serde_json::{json, Value};

use super::{chart, documents, read, repo, served, values, Manifest};

fn embedded() -> Manifest {
    Manifest::load_file("deploy/manifests/prext-embedded.yaml")
}

fn statefulset(m: &Manifest) -> &Value {
    m.get("StatefulSet", "prext")
}

fn container(m: &Manifest) -> &Value {
    &statefulset(m)["spec"]["template"]["spec"]["containers"][0]
}

#[test]
fn defaults_install_the_embedded_mode_with_the_charts_own_certificates() {
    let v = values();
    assert_eq!(v["store"]["type"], "sqlite");
    assert_eq!(
        v["tls"]["certManager"]["enabled"], false,
        "no cert-manager needed"
    );
    assert_eq!(v["tls"]["existingSecret"], "", "no Secret to create first");
    let persistence = &v["store"]["sqlite"]["persistence"];
    assert_eq!(
        persistence["storageClassName"], "",
        "the cluster's default StorageClass"
    );
    assert_eq!(persistence["accessModes"], json!(["ReadWriteOnce"]));
    assert_eq!(
        v["store"]["sqlite"]["backup"]["enabled"], false,
        "backups are opt-in"
    );
    let notes = read(&chart().join("templates/NOTES.txt"));
    for cost in ["unavailable", "namespace deletion", "replicas", "failover"] {
        assert!(
            notes.contains(cost),
            "NOTES.txt says what each mode costs: {cost}"
        );
    }
}

#[test]
fn chart_picks_the_workload_by_store_type() {
    let sts = read(&chart().join("templates/statefulset.yaml"));
    let deploy = read(&chart().join("templates/deployment.yaml"));
    assert!(sts.starts_with(r#"{{- if eq (include "prext.storeType" .) "sqlite" }}"#));
    assert!(deploy.starts_with(r#"{{- if eq (include "prext.storeType" .) "postgres" }}"#));
    assert!(sts.contains("replicas: 1\n"));
    assert!(sts.contains("- --store=sqlite:/var/lib/prext/prext.db"));
    assert!(!sts.contains("PREXT_STORE_PASSWORD"));
    assert!(sts.contains("volumeClaimTemplates:"));
    // The backup sidecar shares the pod (the only one that can mount a ReadWriteOnce volume).
    assert!(sts.contains("- backup\n") && sts.contains("--to-dir=/backups"));
    assert!(sts.contains(r#""name" "backups""#));
    let pdb = read(&chart().join("templates/pdb.yaml"));
    assert!(pdb.contains("maxUnavailable: 1"));
    let helpers = read(&chart().join("templates/_helpers.tpl"));
    assert!(helpers.contains(r#"fail "store.type must be sqlite or postgres""#));
}

#[test]
fn chart_issues_a_stable_certificate_and_trusts_it_in_every_apiservice() {
    let text = read(&chart().join("templates/apiservices.yaml"));
    // One template makes the Secret and the APIServices, so both carry the same CA.
    for want in [
        r#"lookup "v1" "Secret" .Release.Namespace $secretName"#,
        "genCA",
        "genSignedCert $svc nil $names",
        "kind: Secret",
        "type: kubernetes.io/tls",
        "ca.crt: {{ $ca }}",
        "{{- $caBundle = $ca }}",
        "kind: APIService",
        "caBundle: {{ . }}",
    ] {
        assert!(text.contains(want), "apiservices.yaml lacks {want:?}");
    }
    let reuse = text
        .find("index $existing.data \"tls.crt\"")
        .expect("reads the Secret back");
    let generate = text.find("genCA").expect("genCA");
    assert!(
        reuse < generate,
        "an existing Secret is kept; new ones only when there is none"
    );
    // The Service names the certificate must cover.
    for name in [
        "$fullname",
        "$fullname .Release.Namespace",
        "$svc .Values.clusterDomain",
    ] {
        assert!(text.contains(name), "{name}");
    }
}

#[test]
fn embedded_manifest_holds_exactly_the_expected_objects_and_no_private_key() {
    let m = embedded();
    assert!(m.text.contains(
        "helm template prext deploy/helm/prext --namespace prext --set tls.existingSecret=prext-tls"
    ));
    let sources: Vec<&str> = m
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("# Source: "))
        .collect();
    assert_eq!(sources.len(), m.objects.len(), "one `# Source:` line per object");
    for s in sources {
        let file = s.strip_prefix("prext/").expect("chart-relative path");
        assert!(chart().join(file).is_file(), "{s} is not a template of the chart");
    }
    let found: BTreeSet<(String, String)> = m
        .objects
        .iter()
        .map(|o| {
            (
                o["kind"].as_str().expect("kind").to_string(),
                o["metadata"]["name"].as_str().expect("name").to_string(),
            )
        })
        .collect();
    let mut expected: BTreeSet<(String, String)> = [
        ("PodDisruptionBudget", "prext"),
        ("ServiceAccount", "prext"),
        ("ClusterRole", "prext:reports-view"),
        ("ClusterRole", "prext:reports-edit"),
        ("ClusterRole", "prext:namespace-reader"),
        ("ClusterRoleBinding", "prext:system:auth-delegator"),
        ("ClusterRoleBinding", "prext:namespace-reader"),
        ("RoleBinding", "prext:extension-apiserver-authentication-reader"),
        ("Service", "prext"),
        ("StatefulSet", "prext"),
    ]
    .iter()
    .map(|(k, n)| (k.to_string(), n.to_string()))
    .collect();
    expected.extend(
        served()
            .into_iter()
            .map(|(g, v)| ("APIService".to_string(), format!("{v}.{g}"))),
    );
    assert_eq!(found, expected);
    assert_eq!(m.objects.len(), expected.len(), "no duplicates");
    assert!(!m.text.contains("PRIVATE KEY") && !m.text.contains("cert-manager.io"));
    for o in &m.objects {
        assert_eq!(o["metadata"]["labels"]["app.kubernetes.io/instance"], "prext");
    }
}

#[test]
fn embedded_statefulset_runs_one_pod_on_its_own_volume() {
    let m = embedded();
    let v = values();
    let sts = &statefulset(&m)["spec"];
    assert_eq!(sts["replicas"], 1);
    assert_eq!(sts["podManagementPolicy"], "OrderedReady");
    assert_eq!(sts["updateStrategy"], json!({"type": "RollingUpdate"}));
    assert_eq!(
        sts["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(sts["serviceName"], "prext");
    let pod = &sts["template"]["spec"];
    assert_eq!(
        pod["terminationGracePeriodSeconds"],
        v["terminationGracePeriodSeconds"]
    );
    let claims = sts["volumeClaimTemplates"].as_array().expect("claims");
    assert_eq!(claims.len(), 1, "no backup volume by default");
    let claim = &claims[0];
    assert_eq!(claim["metadata"]["name"], "data");
    let persistence = &v["store"]["sqlite"]["persistence"];
    assert_eq!(claim["spec"]["accessModes"], persistence["accessModes"]);
    assert_eq!(
        claim["spec"]["resources"]["requests"]["storage"],
        persistence["size"]
    );
    assert!(
        claim["spec"].get("storageClassName").is_none(),
        "the default StorageClass"
    );
    let volumes = pod["volumes"].as_array().expect("volumes");
    assert!(
        volumes.iter().all(|v| v["name"] != "data"),
        "the data dir is the claim, never an emptyDir"
    );
    let c = container(&m);
    let mounts = c["volumeMounts"].as_array().expect("mounts");
    let data = mounts.iter().find(|m| m["name"] == "data").expect("data mount");
    assert_eq!(data["mountPath"], "/var/lib/prext");
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args[0], "serve");
    assert!(
        args.contains(&"--store=sqlite:/var/lib/prext/prext.db"),
        "{args:?}"
    );
    assert!(args.contains(&"--data-dir=/var/lib/prext"), "{args:?}");
    assert!(c["env"]
        .as_array()
        .expect("env")
        .iter()
        .all(|e| e["name"] != "PREXT_STORE_PASSWORD"));
    let certs = volumes
        .iter()
        .find(|v| v["name"] == "certs")
        .expect("certs volume");
    assert_eq!(certs["secret"]["secretName"], "prext-tls");
    assert_eq!(
        sts["selector"]["matchLabels"],
        sts["template"]["metadata"]["labels"]
    );
}

#[test]
fn embedded_pod_is_the_postgres_pod_but_for_the_store() {
    let m = embedded();
    let pg = Manifest::load();
    let mut ours = container(&m).clone();
    let mut theirs = pg.container().clone();
    let store_arg = |c: &mut Value| {
        let args = c["args"].as_array_mut().expect("args");
        let i = args
            .iter()
            .position(|a| a.as_str().is_some_and(|a| a.starts_with("--store=")))
            .expect("--store");
        args.remove(i);
    };
    store_arg(&mut ours);
    store_arg(&mut theirs);
    theirs["env"]
        .as_array_mut()
        .expect("env")
        .retain(|e| e["name"] != "PREXT_STORE_PASSWORD");
    assert_eq!(
        ours, theirs,
        "image, flags, probes, resources, security and mounts agree"
    );
    let pod = &statefulset(&m)["spec"]["template"]["spec"];
    let pg_pod = &pg.get("Deployment", "prext")["spec"]["template"]["spec"];
    for field in ["serviceAccountName", "securityContext"] {
        assert_eq!(pod[field], pg_pod[field], "{field}");
    }
}

#[test]
fn embedded_budget_lets_a_drain_through_and_apiservices_trust_the_secrets_ca() {
    let m = embedded();
    let labels = &statefulset(&m)["spec"]["template"]["metadata"]["labels"];
    let pdb = &m.get("PodDisruptionBudget", "prext")["spec"];
    assert_eq!(
        pdb["maxUnavailable"], 1,
        "one replica: a minAvailable of 1 blocks every drain"
    );
    assert!(pdb.get("minAvailable").is_none());
    assert_eq!(pdb["selector"]["matchLabels"], *labels);
    assert_eq!(m.get("Service", "prext")["spec"]["selector"], *labels);
    for s in m.of_kind("APIService") {
        assert_eq!(
            s["spec"]["service"],
            json!({"name": "prext", "namespace": "prext", "port": 443})
        );
        assert!(s["spec"].get("insecureSkipTLSVerify").is_none());
        assert!(
            s["metadata"].get("annotations").is_none(),
            "no cert-manager injection"
        );
    }
    assert!(m.text.contains("caBundle"), "the header says to patch the CA in");
}

#[test]
fn both_manifests_validate_against_the_kubernetes_1_32_schemas() {
    let cert_manager = ["Certificate", "Issuer"];
    let mut checked = 0;
    for file in [
        "deploy/manifests/prext-embedded.yaml",
        "deploy/manifests/prext.yaml",
    ] {
        for obj in documents(&read(&repo().join(file))) {
            if cert_manager.contains(&obj["kind"].as_str().unwrap_or_default()) {
                assert_eq!(obj["apiVersion"], "cert-manager.io/v1");
                continue;
            }
            if let Err(e) = super::schema::validate(&obj) {
                panic!("{file}: {} {}: {e}", obj["kind"], obj["metadata"]["name"]);
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "{checked} objects");
}
