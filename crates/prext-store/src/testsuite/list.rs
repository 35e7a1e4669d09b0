//! Checks of lists: scope and order, label and field selectors, keyset pagination, snapshots.

use prext_api::fields::{Field, FieldOp, FieldRequirement, FieldSelector};
use prext_api::labels::{LabelSelector, Operator, Requirement};

use super::fixtures::{collect, create, keys, list_keys, report, revision, set_labels, CPOLR, POLR, REPS};
use crate::{ListItem, ListOptions, Preconditions, Store};

fn all(resource: &str) -> ListOptions {
    ListOptions {
        resource: resource.into(),
        ..ListOptions::default()
    }
}

fn in_ns(resource: &str, ns: &str) -> ListOptions {
    ListOptions {
        namespace: Some(ns.into()),
        ..all(resource)
    }
}

/// Lists return one resource, across or within namespaces, in `(namespace, name)` order, at
/// the current revision.
pub async fn list_order_and_scope(store: &dyn Store) {
    for (ns, name) in [
        ("b", "x"),
        ("a", "y"),
        ("c", "z"),
        ("a", "x"),
        ("a", "a-1"),
        ("a", "a.0"),
    ] {
        create(store, report(POLR, ns, name)).await;
    }
    create(store, report(REPS, "a", "x")).await;
    for name in ["m", "b", "z"] {
        create(store, report(CPOLR, "", name)).await;
    }

    let stream = store.list(all(POLR)).await.expect("list");
    assert_eq!(
        stream.revision,
        revision(store).await,
        "an idle store lists at its revision"
    );
    let (objects, more) = collect(stream).await;
    assert!(!more, "no More without a limit");
    let got: Vec<_> = objects
        .iter()
        .map(|o| (o.key.namespace.clone(), o.key.name.clone()))
        .collect();
    let want = keys(&[
        ("a", "a-1"),
        ("a", "a.0"),
        ("a", "x"),
        ("a", "y"),
        ("b", "x"),
        ("c", "z"),
    ]);
    assert_eq!(got, want, "all namespaces, byte order of (namespace, name)");
    for o in &objects {
        assert_eq!(o.key.resource, POLR);
        assert_eq!(
            store.get(&o.key).await.expect("get").as_ref(),
            Some(o),
            "a listed object is the stored one"
        );
    }

    assert_eq!(list_keys(store, in_ns(POLR, "a")).await, want[..4].to_vec());
    assert_eq!(list_keys(store, in_ns(POLR, "nope")).await, keys(&[]));
    assert_eq!(list_keys(store, all(REPS)).await, keys(&[("a", "x")]));
    assert_eq!(
        list_keys(store, all(CPOLR)).await,
        keys(&[("", "b"), ("", "m"), ("", "z")])
    );
    assert_eq!(list_keys(store, all("other.example.com")).await, keys(&[]));
}

/// Label requirements as `(key, operator, values)`.
type LabelReqs<'a> = &'a [(&'a str, Operator, &'a [&'a str])];
/// Field requirements as `(field, operator, value)`.
type FieldReqs<'a> = &'a [(Field, FieldOp, &'a str)];

fn label_selector(reqs: LabelReqs<'_>) -> LabelSelector {
    LabelSelector {
        requirements: reqs
            .iter()
            .map(|(key, operator, values)| Requirement {
                key: (*key).to_owned(),
                operator: *operator,
                values: values.iter().map(|v| (*v).to_owned()).collect(),
            })
            .collect(),
    }
}

/// Every label operator, keys with dots and slashes, and the missing-key cases.
pub async fn label_selectors(store: &dyn Store) {
    use Operator::*;
    let fixtures: &[(&str, &[(&str, &str)])] = &[
        (
            "a",
            &[
                ("app.kubernetes.io/name", "web"),
                ("tier", "1"),
                ("cpol.kyverno.io/require-labels", "12345"),
            ],
        ),
        ("b", &[("app.kubernetes.io/name", "db"), ("tier", "10")]),
        ("c", &[("app.kubernetes.io/name", "web"), ("tier", "x")]),
        ("d", &[("app", "web")]),
        ("e", &[]),
    ];
    for (name, labels) in fixtures {
        let mut w = report(POLR, "ns", name);
        set_labels(&mut w, labels);
        create(store, w).await;
    }
    let app = "app.kubernetes.io/name";
    let cases: &[(LabelReqs<'_>, &[&str])] = &[
        (&[], &["a", "b", "c", "d", "e"]),
        (&[(app, Equals, &["web"])], &["a", "c"]),
        (&[(app, In, &["db", "web"])], &["a", "b", "c"]),
        (&[(app, In, &["nothing"])], &[]),
        (&[(app, NotEquals, &["web"])], &["b", "d", "e"]),
        (&[(app, NotIn, &["web", "db"])], &["d", "e"]),
        (&[(app, Exists, &[])], &["a", "b", "c"]),
        (&[(app, DoesNotExist, &[])], &["d", "e"]),
        // "app" is not a prefix match of "app.kubernetes.io/name", nor the other way around.
        (&[("app", Exists, &[])], &["d"]),
        (&[("app.kubernetes.io", Exists, &[])], &[]),
        (&[("cpol.kyverno.io/require-labels", Equals, &["12345"])], &["a"]),
        (&[("tier", GreaterThan, &["5"])], &["b"]),
        (&[("tier", GreaterThan, &["0"])], &["a", "b"]),
        (&[("tier", LessThan, &["10"])], &["a"]),
        (&[("tier", GreaterThan, &["-1"]), (app, Equals, &["web"])], &["a"]),
        (&[(app, Exists, &[]), ("tier", NotIn, &["1", "10"])], &["c"]),
    ];
    for (reqs, want) in cases {
        let opts = ListOptions {
            labels: label_selector(reqs),
            ..all(POLR)
        };
        let got: Vec<String> = list_keys(store, opts).await.into_iter().map(|(_, n)| n).collect();
        assert_eq!(got, *want, "label selector {reqs:?}");
    }
}

fn field_selector(reqs: FieldReqs<'_>) -> FieldSelector {
    FieldSelector {
        requirements: reqs
            .iter()
            .map(|(field, op, value)| FieldRequirement {
                field: *field,
                op: *op,
                value: (*value).to_owned(),
            })
            .collect(),
    }
}

/// `metadata.name` and `metadata.namespace` with `=` and `!=`, alone and combined.
pub async fn field_selectors(store: &dyn Store) {
    use Field::*;
    use FieldOp::*;
    for (ns, name) in [("x", "a"), ("x", "b"), ("y", "a"), ("y", "c")] {
        create(store, report(POLR, ns, name)).await;
    }
    create(store, report(CPOLR, "", "a")).await;
    let cases: &[(FieldReqs<'_>, &[(&str, &str)])] = &[
        (&[(Name, Equals, "a")], &[("x", "a"), ("y", "a")]),
        (&[(Name, NotEquals, "a")], &[("x", "b"), ("y", "c")]),
        (&[(Namespace, Equals, "y")], &[("y", "a"), ("y", "c")]),
        (&[(Namespace, NotEquals, "y")], &[("x", "a"), ("x", "b")]),
        (&[(Namespace, Equals, "x"), (Name, NotEquals, "a")], &[("x", "b")]),
        (&[(Name, Equals, "a"), (Name, Equals, "b")], &[]),
        (&[(Name, Equals, "x' OR 1=1 --")], &[]),
    ];
    for (reqs, want) in cases {
        let opts = ListOptions {
            fields: field_selector(reqs),
            ..all(POLR)
        };
        assert_eq!(
            list_keys(store, opts).await,
            keys(want),
            "field selector {reqs:?}"
        );
    }
    let opts = ListOptions {
        fields: field_selector(&[(Namespace, Equals, "")]),
        ..all(CPOLR)
    };
    assert_eq!(
        list_keys(store, opts).await,
        keys(&[("", "a")]),
        "cluster-scoped objects have namespace ''"
    );
}

/// Reads every page of `opts` with `limit`, resuming after the last key of each page.
async fn pages(store: &dyn Store, opts: &ListOptions, limit: usize) -> Vec<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page_opts = ListOptions {
            limit: Some(limit),
            after: after.clone(),
            ..opts.clone()
        };
        let (objects, more) = collect(store.list(page_opts).await.expect("list page")).await;
        assert!(
            objects.len() <= limit,
            "page of {} over limit {limit}",
            objects.len()
        );
        let page: Vec<_> = objects
            .into_iter()
            .map(|o| (o.key.namespace, o.key.name))
            .collect();
        after = page.last().cloned();
        out.push(page);
        if !more {
            return out;
        }
        assert_eq!(
            out.last().map(Vec::len),
            Some(limit),
            "a page announcing more is full"
        );
        assert!(out.len() < 1000, "pagination does not end");
    }
}

/// Keyset pagination with every limit returns every object exactly once, in order.
pub async fn pagination(store: &dyn Store) {
    let mut all_keys = Vec::new();
    for i in 0..25 {
        let (ns, name) = (format!("ns-{}", i % 3), format!("r-{i:02}"));
        let mut w = report(POLR, &ns, &name);
        set_labels(&mut w, &[("even", if i % 2 == 0 { "yes" } else { "no" })]);
        create(store, w).await;
        all_keys.push((ns, name));
    }
    all_keys.sort();
    for limit in [1, 2, 4, 7, 24, 25, 26, 100] {
        let pages = pages(store, &all(POLR), limit).await;
        let flat: Vec<_> = pages.concat();
        assert_eq!(
            flat, all_keys,
            "limit {limit}: every object exactly once, in order"
        );
        assert_eq!(
            pages.len(),
            25usize.div_ceil(limit).max(1),
            "limit {limit}: page count"
        );
    }
    // Within a namespace, and with a selector: pages cover exactly the matching objects.
    let opts = ListOptions {
        labels: label_selector(&[("even", Operator::Equals, &["yes"])]),
        ..in_ns(POLR, "ns-1")
    };
    let whole = list_keys(store, opts.clone()).await;
    assert!(!whole.is_empty());
    assert_eq!(pages(store, &opts, 2).await.concat(), whole);
    // Resuming after a key that is not stored starts at the next one.
    let opts = ListOptions {
        after: Some(("ns-1".into(), "r-00".into())),
        limit: Some(1),
        ..all(POLR)
    };
    let (first, more) = collect(store.list(opts).await.expect("list")).await;
    assert_eq!(
        first.iter().map(|o| o.key.name.as_str()).collect::<Vec<_>>(),
        ["r-01"]
    );
    assert!(more);
    // In one namespace, a resume key from an earlier namespace selects all of it, one from a
    // later namespace nothing.
    let ns1 = list_keys(store, in_ns(POLR, "ns-1")).await;
    for (after_ns, want) in [
        ("ns-0", ns1.clone()),
        ("ns-1", ns1[1..].to_vec()),
        ("ns-2", vec![]),
    ] {
        let after = Some((after_ns.to_owned(), ns1[0].1.clone()));
        let opts = ListOptions {
            after,
            ..in_ns(POLR, "ns-1")
        };
        assert_eq!(
            list_keys(store, opts).await,
            want,
            "namespace ns-1 after {after_ns}"
        );
    }
}

/// A list is one snapshot: writes committed while it streams are not seen, and the list's
/// revision is the snapshot's.
pub async fn list_snapshot(store: &dyn Store) {
    const N: usize = 300;
    let mut written = Vec::with_capacity(N);
    for i in 0..N {
        written.push(create(store, report(POLR, "ns", &format!("r-{i:03}"))).await);
    }
    let at = revision(store).await;
    let mut stream = store.list(all(POLR)).await.expect("list");
    assert_eq!(stream.revision, at);
    let first = match stream.items.recv().await {
        Some(Ok(ListItem::Object(o))) => o,
        other => panic!("first item: {other:?}"),
    };
    assert_eq!(first.key.name, "r-000");

    // Writes while the list is open: they must neither block nor show up.
    for i in (N - 20)..N {
        let key = crate::ObjectKey::new(POLR, "ns", format!("r-{i:03}"));
        store
            .delete(&key, Preconditions::default())
            .await
            .expect("delete during list");
    }
    let updated = store
        .update(report(POLR, "ns", "r-150"), written[150].revision)
        .await;
    let updated = updated.expect("update during list");
    create(store, report(POLR, "ns", "r-zzz")).await;
    create(store, report(POLR, "a-first", "r")).await;

    let (rest, more) = collect(stream).await;
    assert!(!more);
    let listed: Vec<_> = std::iter::once(first).chain(rest).collect();
    assert_eq!(
        listed, written,
        "the snapshot has exactly the objects at its revision, as they were"
    );
    assert!(updated.revision > at);
    assert!(revision(store).await > at);
}
