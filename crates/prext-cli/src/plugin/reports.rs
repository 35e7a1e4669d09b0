//! The report commands the original prototype had: `create -f`, `apply -f`,
//! `get polr|cpolr [NAME] [-A] [-o yaml|json] [-w]` and `delete polr|cpolr NAME`, for every
//! served report kind (short names, plurals, kinds, or `plural.group`).

use std::io::Read;
use std::path::PathBuf;

use futures::StreamExt;
use http::Method;
use http_body_util::BodyExt;
use prext_api::resources::{ResourceDef, RESOURCES};
use serde_json::Value;

use super::client::{usage, ApiRequest, Conn, PluginError, PluginResult};
use super::table::{self, Cell};

/// The Accept header kubectl sends for `get` (a Table, else JSON).
pub const ACCEPT_TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";

/// `-o` of `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GetOutput {
    Wide,
    Yaml,
    Json,
    Name,
}

/// The report kind named on the command line: a short name (`polr`), plural, singular, kind
/// or `plural.group`; the first match in the served table wins (wgpolicyk8s.io first).
pub fn resolve(arg: &str) -> PluginResult<&'static ResourceDef> {
    let lower = arg.to_ascii_lowercase();
    RESOURCES
        .iter()
        .find(|r| {
            r.short_names.contains(&lower.as_str())
                || r.plural == lower
                || r.singular == lower
                || r.kind.eq_ignore_ascii_case(arg)
                || r.group_resource() == lower
        })
        .ok_or_else(|| usage(format!("the server doesn't have a resource type \"{arg}\"")))
}

/// The collection path of `def` in `namespace` (`None`: all namespaces, or cluster-scoped).
pub fn collection(def: &ResourceDef, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if def.namespaced => format!(
            "/apis/{}/{}/namespaces/{ns}/{}",
            def.group, def.version, def.plural
        ),
        _ => format!("/apis/{}/{}/{}", def.group, def.version, def.plural),
    }
}

/// kubectl's `kind.group/name` of an object.
fn display_name(def: &ResourceDef, name: &str) -> String {
    format!("{}.{}/{name}", def.singular, def.group)
}

/// Reads every object of `-f` files (`-` is stdin): YAML or JSON, several documents, and
/// `kind: List` flattened.
pub fn read_manifests(files: &[PathBuf]) -> PluginResult<Vec<Value>> {
    let mut out = Vec::new();
    for file in files {
        let text = if file.as_os_str() == "-" {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).map_err(usage)?;
            s
        } else {
            std::fs::read_to_string(file).map_err(|e| usage(format!("reading {}: {e}", file.display())))?
        };
        let text = text.trim_start_matches('\u{feff}');
        for doc in serde_norway::Deserializer::from_str(text) {
            let v: Value = serde::Deserialize::deserialize(doc)
                .map_err(|e| usage(format!("{}: not a YAML or JSON object: {e}", file.display())))?;
            match v {
                Value::Null => {}
                v if v["kind"] == "List" => out.extend(v["items"].as_array().cloned().unwrap_or_default()),
                v => out.push(v),
            }
        }
    }
    if out.is_empty() {
        return Err(usage("no objects passed to the command"));
    }
    Ok(out)
}

/// The kind of a manifest object, its namespace (namespaced kinds) and name; drops the
/// fields the server owns (uid, resourceVersion, …) so the object can be created or applied.
fn target(conn: &Conn, obj: &mut Value) -> PluginResult<(&'static ResourceDef, Option<String>, String)> {
    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
    let kind = obj["kind"].as_str().unwrap_or_default();
    let def = prext_api::resources::find_kind(api_version, kind).ok_or_else(|| {
        usage(format!(
            "no matches for kind \"{kind}\" in version \"{api_version}\""
        ))
    })?;
    let name = obj["metadata"]["name"]
        .as_str()
        .filter(|n| !n.is_empty())
        .ok_or_else(|| usage(format!("{kind}: metadata.name is required")))?
        .to_owned();
    if let Some(meta) = obj["metadata"].as_object_mut() {
        for f in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "selfLink",
        ] {
            meta.remove(f);
        }
        let given = meta.get("namespace").and_then(Value::as_str).unwrap_or("");
        if def.namespaced && conn.namespace_explicit && !given.is_empty() && given != conn.namespace {
            return Err(usage(format!(
                "the namespace from the provided object \"{given}\" does not match the namespace \"{}\". You must pass '--namespace={given}' to perform this operation.",
                conn.namespace
            )));
        }
        if def.namespaced && given.is_empty() {
            meta.insert("namespace".into(), Value::String(conn.namespace.clone()));
        }
    }
    let namespace = def.namespaced.then(|| {
        obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    });
    Ok((def, namespace, name))
}

/// `create -f`: creates every object; stops at the first error.
pub async fn create(conn: &Conn, files: &[PathBuf]) -> PluginResult<()> {
    for mut obj in read_manifests(files)? {
        let (def, ns, name) = target(conn, &mut obj)?;
        let path = collection(def, ns.as_deref());
        let body = serde_json::to_vec(&obj).map_err(usage)?;
        conn.send(ApiRequest::with_body(
            Method::POST,
            &path,
            "application/json",
            body,
        ))
        .await?;
        table::emit(&format!("{} created\n", display_name(def, &name)))?;
    }
    Ok(())
}

/// `apply -f`: server-side apply (field manager `kubectl-prext`, conflicts forced), printing
/// `created`, `configured` or `unchanged` like kubectl.
pub async fn apply(conn: &Conn, files: &[PathBuf]) -> PluginResult<()> {
    for mut obj in read_manifests(files)? {
        let (def, ns, name) = target(conn, &mut obj)?;
        let item = format!("{}/{name}", collection(def, ns.as_deref()));
        let before = match conn.get_json(&item, None).await {
            Ok(v) => Some(v),
            Err(PluginError::Server { reason, .. }) if reason == "NotFound" => None,
            Err(e) => return Err(e),
        };
        let path = format!("{item}?fieldManager=kubectl-prext&force=true");
        let body = serde_json::to_vec(&obj).map_err(usage)?;
        let (status, answer) = conn
            .send(ApiRequest::with_body(
                Method::PATCH,
                &path,
                "application/apply-patch+yaml",
                body,
            ))
            .await?;
        let after: Value = serde_json::from_slice(&answer).unwrap_or_default();
        let verb = match (status.as_u16(), before) {
            (201, _) | (_, None) => "created",
            (_, Some(before)) if content(before.clone()) == content(after) => "unchanged",
            _ => "configured",
        };
        table::emit(&format!("{} {verb}\n", display_name(def, &name)))?;
    }
    Ok(())
}

/// An object without the fields every write changes (resourceVersion, managedFields,
/// generation), to tell an apply that changed nothing.
fn content(mut v: Value) -> Value {
    if let Some(meta) = v["metadata"].as_object_mut() {
        for f in ["resourceVersion", "managedFields", "generation"] {
            meta.remove(f);
        }
    }
    v
}

/// `delete KIND NAME`.
pub async fn delete(conn: &Conn, kind: &str, names: &[String]) -> PluginResult<()> {
    let def = resolve(kind)?;
    for name in names {
        let path = format!("{}/{name}", collection(def, Some(&conn.namespace)));
        conn.send(ApiRequest {
            method: Method::DELETE,
            ..ApiRequest::get(&path)
        })
        .await?;
        table::emit(&format!("{} deleted\n", display_name(def, name)))?;
    }
    Ok(())
}

/// Options of `get`.
pub struct GetOptions<'a> {
    pub kind: &'a str,
    pub name: Option<&'a str>,
    pub all_namespaces: bool,
    pub output: Option<GetOutput>,
    pub watch: bool,
}

/// `get KIND [NAME]`.
pub async fn get(conn: &Conn, o: GetOptions<'_>) -> PluginResult<()> {
    let def = resolve(o.kind)?;
    let ns = (def.namespaced && !o.all_namespaces).then_some(conn.namespace.as_str());
    let path = match o.name {
        Some(name) => format!("{}/{name}", collection(def, ns)),
        None => collection(def, ns),
    };
    let show_ns = def.namespaced && o.all_namespaces;
    if o.watch {
        return watch(conn, def, &path, o.name, show_ns, o.output).await;
    }
    match o.output {
        Some(GetOutput::Json) => table::emit(&format!("{}\n", pretty(&conn.get_json(&path, None).await?)))?,
        Some(GetOutput::Yaml) => table::emit(&yaml(&conn.get_json(&path, None).await?))?,
        Some(GetOutput::Name) => {
            let v = conn.get_json(&path, None).await?;
            let items = if o.name.is_some() {
                vec![v]
            } else {
                v["items"].as_array().cloned().unwrap_or_default()
            };
            for i in items {
                table::emit(&format!(
                    "{}\n",
                    display_name(def, i["metadata"]["name"].as_str().unwrap_or_default())
                ))?;
            }
        }
        None | Some(GetOutput::Wide) => {
            let t = conn.get_json(&path, Some(ACCEPT_TABLE)).await?;
            let cols = table::visible_columns(&t, o.output == Some(GetOutput::Wide));
            let rows = table::table_rows(&t, &cols, show_ns);
            if rows.is_empty() {
                match ns {
                    Some(ns) => eprintln!("No resources found in {ns} namespace."),
                    None => eprintln!("No resources found"),
                }
                return Ok(());
            }
            let mut all = vec![table::table_header(&t, &cols, show_ns)];
            all.extend(rows);
            table::emit(&table::render(&all, false))?;
        }
    }
    Ok(())
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

fn yaml(v: &Value) -> String {
    serde_norway::to_string(v).unwrap_or_default()
}

/// `get -w`: the current state, then one line (or object) per change until interrupted.
async fn watch(
    conn: &Conn,
    def: &ResourceDef,
    path: &str,
    name: Option<&str>,
    show_ns: bool,
    output: Option<GetOutput>,
) -> PluginResult<()> {
    let (collection_path, selector) = match name {
        Some(n) => (
            path.rsplit_once('/').map_or(path, |(c, _)| c).to_owned(),
            format!("&fieldSelector=metadata.name%3D{n}"),
        ),
        None => (path.to_owned(), String::new()),
    };
    let watch_path = format!("{collection_path}?watch=1{selector}");
    let table_output = matches!(output, None | Some(GetOutput::Wide));
    let accept = table_output.then_some(ACCEPT_TABLE);
    let resp = conn.open(ApiRequest::get(&watch_path).accept(accept)).await?;
    let mut body = resp.into_body().into_data_stream();
    let mut pending = Vec::new();
    let mut columns: Option<Vec<usize>> = None;
    let mut header_template: Option<Value> = None;
    let mut widths: Vec<usize> = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| PluginError::Connect(e.to_string()))?;
        pending.extend_from_slice(&chunk);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            let object = &event["object"];
            if event["type"] == "ERROR" {
                return Err(super::client::server_error(
                    http::StatusCode::INTERNAL_SERVER_ERROR,
                    &serde_json::to_vec(object).unwrap_or_default(),
                ));
            }
            if event["type"] == "BOOKMARK" {
                continue;
            }
            match output {
                Some(GetOutput::Json) => table::emit(&format!("{}\n", pretty(object)))?,
                Some(GetOutput::Yaml) => table::emit(&format!("---\n{}", yaml(object)))?,
                Some(GetOutput::Name) => table::emit(&format!(
                    "{}\n",
                    display_name(def, object["metadata"]["name"].as_str().unwrap_or_default())
                ))?,
                None | Some(GetOutput::Wide) => {
                    if object["columnDefinitions"]
                        .as_array()
                        .is_some_and(|c| !c.is_empty())
                    {
                        header_template = Some(object.clone());
                    }
                    let Some(t) = &header_template else { continue };
                    let first = columns.is_none();
                    let cols = columns
                        .get_or_insert_with(|| table::visible_columns(t, output == Some(GetOutput::Wide)));
                    let mut rows: Vec<Vec<Cell>> = Vec::new();
                    if first {
                        rows.push(table::table_header(t, cols, show_ns));
                    }
                    let mut with_rows = t.clone();
                    with_rows["rows"] = object["rows"].clone();
                    rows.extend(table::table_rows(&with_rows, cols, show_ns));
                    table::emit(&table::render_aligned(&rows, false, &mut widths))?;
                }
            }
            use std::io::Write as _;
            let _ = std::io::stdout().flush();
        }
    }
    Ok(())
}
