//! Checks of the deployment artifacts: the plain manifest `deploy/manifests/prext.yaml`
//! (every object a production install needs, secured as the protocol requires, and in step
//! with the chart's `values.yaml`), the Helm chart's templates (balanced actions and
//! blocks) and the Dockerfile.
//!
//! The served group/versions come from `prext_api::RESOURCES`, so adding a group to the
//! server without registering it in the chart fails here.
//!
//! [`embedded`] checks the embedded mode and its manifest `deploy/manifests/prext-embedded.yaml`;
//! [`schema`] validates both manifests against the Kubernetes 1.32 API types.

#[path = "deploy/embedded.rs"]
mod embedded;
#[path = "deploy/schema.rs"]
mod schema;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn chart() -> PathBuf {
    repo().join("deploy/helm/prext")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// Every non-empty YAML document of `text`, as JSON.
fn documents(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|doc| {
            let v: Value = serde::Deserialize::deserialize(doc).expect("valid YAML document");
            v
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn yaml_file(path: &Path) -> Value {
    serde_norway::from_str(&read(path)).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}

/// The manifest's objects.
struct Manifest {
    text: String,
    objects: Vec<Value>,
}

impl Manifest {
    fn load() -> Self {
        Self::load_file("deploy/manifests/prext.yaml")
    }

    fn load_file(path: &str) -> Self {
        let text = read(&repo().join(path));
        let objects = documents(&text);
        Manifest { text, objects }
    }

    fn of_kind(&self, kind: &str) -> Vec<&Value> {
        self.objects.iter().filter(|o| o["kind"] == kind).collect()
    }

    fn get(&self, kind: &str, name: &str) -> &Value {
        self.objects
            .iter()
            .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no {kind} {name} in the manifest"))
    }

    fn container(&self) -> &Value {
        &self.get("Deployment", "prext")["spec"]["template"]["spec"]["containers"][0]
    }
}

fn values() -> Value {
    yaml_file(&chart().join("values.yaml"))
}

/// The served `(group, version)` pairs: the report kinds and the result query API.
fn served() -> BTreeSet<(String, String)> {
    let mut served: BTreeSet<(String, String)> = prext_api::RESOURCES
        .iter()
        .map(|r| (r.group.to_string(), r.version.to_string()))
        .collect();
    served.insert((
        prext_api::results::GROUP.into(),
        prext_api::results::VERSION.into(),
    ));
    served
}

#[test]
fn manifest_says_how_it_is_made_and_every_object_names_its_template() {
    let m = Manifest::load();
    assert!(m
        .text
        .contains("helm template prext deploy/helm/prext --namespace prext"));
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
}

#[test]
fn manifest_holds_exactly_the_expected_objects() {
    let m = Manifest::load();
    let found: BTreeSet<(String, String)> = m
        .objects
        .iter()
        .map(|o| {
            let kind = o["kind"].as_str().expect("kind").to_string();
            (kind, o["metadata"]["name"].as_str().expect("name").to_string())
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
        ("Deployment", "prext"),
        ("Certificate", "prext-ca"),
        ("Certificate", "prext-serving"),
        ("Issuer", "prext-selfsigned"),
        ("Issuer", "prext-ca"),
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

    let cluster_scoped = ["ClusterRole", "ClusterRoleBinding", "APIService"];
    for o in &m.objects {
        let kind = o["kind"].as_str().unwrap_or("");
        let ns = &o["metadata"]["namespace"];
        if cluster_scoped.contains(&kind) {
            assert!(ns.is_null(), "{kind} is cluster-scoped: {o}");
        } else if kind == "RoleBinding" {
            assert_eq!(ns, "kube-system");
        } else {
            assert_eq!(ns, "prext", "{kind} {}", o["metadata"]["name"]);
        }
        assert_eq!(o["metadata"]["labels"]["app.kubernetes.io/instance"], "prext");
    }
}

#[test]
fn one_apiservice_per_served_group_version_trusting_the_injected_ca() {
    let m = Manifest::load();
    let services = m.of_kind("APIService");
    let registered: BTreeSet<(String, String)> = services
        .iter()
        .map(|s| {
            (
                s["spec"]["group"].as_str().unwrap_or("").into(),
                s["spec"]["version"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(registered, served());
    assert_eq!(services.len(), served().len());
    let serving = m.get("Certificate", "prext-serving");
    for s in services {
        let spec = &s["spec"];
        assert_eq!(
            s["metadata"]["name"],
            format!(
                "{}.{}",
                spec["version"].as_str().unwrap_or(""),
                spec["group"].as_str().unwrap_or("")
            )
        );
        assert_eq!(
            spec["service"],
            json!({"name": "prext", "namespace": "prext", "port": 443})
        );
        assert!(spec.get("insecureSkipTLSVerify").is_none(), "{s}");
        assert!(!m.text.contains("insecureSkipTLSVerify"));
        assert_eq!(
            s["metadata"]["annotations"]["cert-manager.io/inject-ca-from"],
            "prext/prext-serving"
        );
        assert_eq!(serving["metadata"]["namespace"], "prext");
        assert_eq!(
            s["metadata"]["labels"]["kube-aggregator.kubernetes.io/automanaged"],
            "false"
        );
        assert_eq!(
            spec["groupPriorityMinimum"],
            values()["apiServices"]["groupPriorityMinimum"]
        );
        assert_eq!(
            spec["versionPriority"],
            values()["apiServices"]["versionPriority"]
        );
    }
}

#[test]
fn serving_certificate_covers_the_service_names_and_is_what_the_pods_mount() {
    let m = Manifest::load();
    let cert = &m.get("Certificate", "prext-serving")["spec"];
    let names: Vec<&str> = cert["dnsNames"]
        .as_array()
        .expect("dnsNames")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for want in ["prext.prext.svc", "prext.prext.svc.cluster.local"] {
        assert!(names.contains(&want), "{names:?}");
    }
    assert_eq!(cert["issuerRef"]["name"], "prext-ca");
    assert_eq!(m.get("Certificate", "prext-ca")["spec"]["isCA"], true);
    assert_eq!(
        m.get("Issuer", "prext-ca")["spec"]["ca"]["secretName"],
        "prext-ca"
    );
    let volumes = &m.get("Deployment", "prext")["spec"]["template"]["spec"]["volumes"];
    let certs = volumes
        .as_array()
        .expect("volumes")
        .iter()
        .find(|v| v["name"] == "certs")
        .expect("certs volume");
    assert_eq!(certs["secret"]["secretName"], cert["secretName"]);
    let mounts = m.container()["volumeMounts"].as_array().expect("mounts").clone();
    let mount = mounts.iter().find(|v| v["name"] == "certs").expect("certs mount");
    assert_eq!(mount["mountPath"], "/certs");
    assert!(
        mount.get("subPath").is_none(),
        "a subPath mount never sees renewed certificates"
    );
}

#[test]
fn deployment_runs_hardened_highly_available_and_probed_over_https() {
    let m = Manifest::load();
    let v = values();
    let deploy = m.get("Deployment", "prext");
    let pod = &deploy["spec"]["template"]["spec"];
    let c = m.container();
    assert_eq!(deploy["spec"]["replicas"], v["replicaCount"]);
    assert!(deploy["spec"]["replicas"].as_u64() >= Some(2));
    assert_eq!(deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"], 0);

    assert_eq!(pod["securityContext"], v["podSecurityContext"]);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(c["securityContext"], v["securityContext"]);
    assert_eq!(c["securityContext"]["runAsNonRoot"], true);
    assert_eq!(c["securityContext"]["runAsUser"], 65532);
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["resources"], v["resources"]);

    for (probe, path) in [("readinessProbe", "/readyz"), ("livenessProbe", "/livez")] {
        let get = &c[probe]["httpGet"];
        assert_eq!(
            *get,
            json!({"path": path, "port": "https", "scheme": "HTTPS"}),
            "{probe}"
        );
        for (k, want) in v[probe].as_object().expect("probe values") {
            assert_eq!(&c[probe][k], want, "{probe}.{k}");
        }
    }
    assert_eq!(
        c["ports"],
        json!([{"name": "https", "containerPort": 6443, "protocol": "TCP"}])
    );

    let chart = yaml_file(&chart().join("Chart.yaml"));
    assert_eq!(
        c["image"],
        format!(
            "{}:{}",
            v["image"]["repository"].as_str().unwrap_or(""),
            chart["appVersion"].as_str().unwrap_or("")
        )
    );

    let labels = &deploy["spec"]["template"]["metadata"]["labels"];
    let anti = &pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]
        ["podAffinityTerm"];
    assert_eq!(anti["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(anti["labelSelector"]["matchLabels"], *labels);
    let spread = &pod["topologySpreadConstraints"][0];
    assert_eq!(spread["topologyKey"], "topology.kubernetes.io/zone");
    assert_eq!(spread["labelSelector"]["matchLabels"], *labels);
    assert_eq!(deploy["spec"]["selector"]["matchLabels"], *labels);
}

#[test]
fn server_flags_and_the_database_password_come_from_the_right_places() {
    let m = Manifest::load();
    let v = values();
    let c = m.container();
    let args: Vec<&str> = c["args"]
        .as_array()
        .expect("args")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(args[0], "serve");
    for want in [
        "--listen=0.0.0.0:6443",
        "--tls-cert-file=/certs/tls.crt",
        "--tls-private-key-file=/certs/tls.key",
        "--authentication-kubeconfig=in-cluster",
        "--authorization-kubeconfig=in-cluster",
        "--log-format=json",
        "--authorization-always-allow-paths=/healthz,/livez,/readyz",
    ] {
        assert!(args.contains(&want), "{want} missing from {args:?}");
    }
    let store = args
        .iter()
        .find_map(|a| a.strip_prefix("--store="))
        .expect("--store");
    assert_eq!(store, v["store"]["url"]);
    let userinfo = store
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('@'))
        .map(|(u, _)| u);
    assert_eq!(
        userinfo,
        Some("prext"),
        "the URL names the user and carries no password"
    );
    let env = c["env"].as_array().expect("env");
    let password = env
        .iter()
        .find(|e| e["name"] == "PREXT_STORE_PASSWORD")
        .expect("password env");
    assert_eq!(
        password["valueFrom"]["secretKeyRef"],
        v["store"]["passwordSecret"]
    );
    assert!(password.get("value").is_none());
}

#[test]
fn service_and_disruption_budget_select_the_pods() {
    let m = Manifest::load();
    let labels = &m.get("Deployment", "prext")["spec"]["template"]["metadata"]["labels"];
    let svc = &m.get("Service", "prext")["spec"];
    assert_eq!(svc["selector"], *labels);
    assert_eq!(
        svc["ports"],
        json!([{"name": "https", "port": 443, "targetPort": "https", "protocol": "TCP"}])
    );
    let pdb = &m.get("PodDisruptionBudget", "prext")["spec"];
    assert_eq!(pdb["selector"]["matchLabels"], *labels);
    let replicas = values()["replicaCount"].as_i64().expect("replicas");
    let min = pdb["minAvailable"].as_i64().expect("minAvailable");
    assert!(
        min >= 1 && min < replicas,
        "a budget of {min} of {replicas} must allow one eviction"
    );
}

#[test]
fn rbac_delegates_authn_authz_and_aggregates_report_access() {
    let m = Manifest::load();
    let sa = json!([{"kind": "ServiceAccount", "name": "prext", "namespace": "prext"}]);
    let delegator = m.get("ClusterRoleBinding", "prext:system:auth-delegator");
    assert_eq!(
        delegator["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"})
    );
    assert_eq!(delegator["subjects"], sa);
    let reader = m.get("RoleBinding", "prext:extension-apiserver-authentication-reader");
    assert_eq!(reader["roleRef"]["kind"], "Role");
    assert_eq!(
        reader["roleRef"]["name"],
        "extension-apiserver-authentication-reader"
    );
    assert_eq!(reader["subjects"], sa);
    let ns_role = m.get("ClusterRole", "prext:namespace-reader");
    assert_eq!(
        ns_role["rules"],
        json!([{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list", "watch"]}])
    );
    let ns_binding = m.get("ClusterRoleBinding", "prext:namespace-reader");
    assert_eq!(ns_binding["roleRef"]["name"], "prext:namespace-reader");
    assert_eq!(ns_binding["subjects"], sa);

    let covers_all = |role: &Value| {
        let rule = &role["rules"][0];
        let has = |field: &str, x: &str| rule[field].as_array().is_some_and(|a| a.iter().any(|v| v == x));
        prext_api::RESOURCES
            .iter()
            .all(|r| has("apiGroups", r.group) && has("resources", r.plural))
    };
    let view = m.get("ClusterRole", "prext:reports-view");
    assert_eq!(
        view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"],
        "true"
    );
    assert_eq!(view["rules"][0]["verbs"], json!(["get", "list", "watch"]));
    assert!(covers_all(view));
    let edit = m.get("ClusterRole", "prext:reports-edit");
    for label in ["aggregate-to-edit", "aggregate-to-admin"] {
        assert_eq!(
            edit["metadata"]["labels"][format!("rbac.authorization.k8s.io/{label}")],
            "true"
        );
    }
    assert!(covers_all(edit));
    let verbs = edit["rules"][0]["verbs"].as_array().expect("verbs");
    assert!(verbs.iter().any(|v| v == "deletecollection") && !verbs.iter().any(|v| v == "*"));
}

/// Checks that the actions of a Go template are closed (`{{`/`}}`) and that its blocks
/// (`if`, `with`, `range`, `define`, `block`) each have their `end`. Returns the problems.
fn template_problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            problems.push("an action is never closed".to_string());
            break;
        };
        let action = &after[..close];
        if action.contains("{{") {
            problems.push(format!("nested `{{{{` in {action:?}"));
        }
        let body = action.trim_start_matches('-').trim_end_matches('-').trim();
        if !body.starts_with("/*") {
            let word = body.split_whitespace().next().unwrap_or("");
            match word {
                "if" | "with" | "range" | "define" | "block" => stack.push(body.to_string()),
                "end" if stack.pop().is_none() => problems.push("`end` without a block".to_string()),
                "else" if stack.is_empty() => problems.push("`else` outside a block".to_string()),
                _ => {}
            }
        }
        rest = &after[close + 2..];
    }
    if rest.contains("}}") {
        problems.push("`}}` without `{{`".to_string());
    }
    problems.extend(stack.into_iter().map(|b| format!("`{b}` is never ended")));
    problems
}

#[test]
fn every_chart_template_is_balanced() {
    let dir = chart().join("templates");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("templates dir") {
        let path = entry.expect("dir entry").path();
        let problems = template_problems(&read(&path));
        assert!(problems.is_empty(), "{}: {problems:?}", path.display());
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} templates found");
}

#[test]
fn the_balance_check_finds_unbalanced_templates() {
    assert!(template_problems("{{- if .a }}x{{- else }}y{{- end }}{{/* c */}}").is_empty());
    assert_eq!(template_problems("{{ if .a }}x"), ["`if .a` is never ended"]);
    assert_eq!(template_problems("x{{ end }}"), ["`end` without a block"]);
    assert_eq!(template_problems("{{ .a }"), ["an action is never closed"]);
    assert_eq!(template_problems("a }} b"), ["`}}` without `{{`"]);
}

#[test]
fn chart_metadata_and_values_parse() {
    let chart = yaml_file(&chart().join("Chart.yaml"));
    assert_eq!(chart["apiVersion"], "v2");
    assert_eq!(chart["name"], "prext");
    assert_eq!(
        chart["appVersion"],
        env!("CARGO_PKG_VERSION"),
        "the chart ships this crate's version"
    );
    let versions = values()["apiServices"]["versions"]
        .as_array()
        .expect("versions")
        .clone();
    let listed: BTreeSet<(String, String)> = versions
        .iter()
        .map(|v| {
            (
                v["group"].as_str().unwrap_or("").into(),
                v["version"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    assert_eq!(listed, served());
}

#[test]
fn dockerfile_builds_locked_and_runs_only_prext_as_non_root() {
    let text = read(&repo().join("Dockerfile"));
    assert!(text.contains("FROM rust:${RUST_VERSION}-bookworm AS builder"));
    assert!(text.contains("cargo build --release --locked -p prext-cli"));
    let runtime = text.rsplit("\nFROM ").next().expect("a runtime stage");
    assert!(runtime.starts_with("gcr.io/distroless/"), "{runtime}");
    let copies: Vec<&str> = runtime.lines().filter(|l| l.starts_with("COPY")).collect();
    assert_eq!(copies, ["COPY --from=builder /out/prext /usr/local/bin/prext"]);
    assert!(runtime.contains("\nUSER 65532:65532\n"));
    let ignore = read(&repo().join(".dockerignore"));
    assert!(ignore.lines().any(|l| l == "**/target") && ignore.lines().any(|l| l == ".git"));
}
