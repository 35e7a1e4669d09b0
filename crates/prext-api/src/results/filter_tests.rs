//! Tests of the result filter parameters.

use proptest::prelude::*;

use super::*;

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

#[test]
fn field_selectors() {
    let (c, g) = parse_field_selector("result=fail,severity==high,policy!=p\\,1,category=Pod Security")
        .expect("parse");
    assert_eq!(g, None);
    assert_eq!(
        c,
        vec![
            Condition::In(ResultColumn::Result, s(&["fail"])),
            Condition::In(ResultColumn::Severity, s(&["high"])),
            Condition::NotIn(ResultColumn::Policy, s(&["p,1"])),
            Condition::In(ResultColumn::Category, s(&["Pod Security"])),
        ]
    );
    let (c, g) = parse_field_selector("report.kind=PolicyReport,groupBy=policy").expect("parse");
    assert_eq!(g.as_deref(), Some("policy"));
    assert_eq!(
        c,
        vec![Condition::In(
            ResultColumn::Resource,
            s(&["policyreports.wgpolicyk8s.io", "policyreports.prext.demo"])
        )]
    );
    let (c, _) =
        parse_field_selector("report.kind=cpolr,report.apiVersion=openreports.io/v1alpha1").expect("parse");
    assert_eq!(
        c,
        vec![
            Condition::In(
                ResultColumn::Resource,
                s(&["clusterpolicyreports.wgpolicyk8s.io"])
            ),
            Condition::In(
                ResultColumn::Resource,
                s(&["reports.openreports.io", "clusterreports.openreports.io"])
            ),
        ]
    );
    let (c, _) = parse_field_selector("metadata.name=polr.web.3,properties.score=9.8").expect("parse");
    assert_eq!(
        c,
        vec![
            Condition::In(ResultColumn::Resource, s(&["policyreports.wgpolicyk8s.io"])),
            Condition::In(ResultColumn::Report, s(&["web"])),
            Condition::Index(3),
            Condition::Property {
                key: "score".into(),
                test: PropertyTest::In(s(&["9.8"]))
            },
        ]
    );
    for bad in [
        "bogus=1",
        "result",
        "metadata.name!=x",
        "policy=a\\b",
        "properties.=1",
    ] {
        assert!(parse_field_selector(bad).is_err(), "{bad}");
    }
    assert!(parse_field_selector("status=fail").is_err_and(|e| e.0.contains("not a known field")));
    assert_eq!(parse_field_selector("").expect("empty"), (vec![], None));
}

#[test]
fn label_selectors() {
    let c = parse_label_selector(
        "severity in (high,critical),result!=pass,!rule,properties.score>7,subject.kind",
    )
    .expect("parse");
    assert_eq!(
        c,
        vec![
            Condition::Property {
                key: "score".into(),
                test: PropertyTest::Number(Compare::Greater, 7.0)
            },
            Condition::NotIn(ResultColumn::Result, s(&["pass"])),
            Condition::In(ResultColumn::Rule, s(&[""])),
            Condition::In(ResultColumn::Severity, s(&["critical", "high"])),
            Condition::NotIn(ResultColumn::SubjectKind, s(&[""])),
        ]
    );
    assert!(parse_label_selector("severity>3").is_err());
    assert!(parse_label_selector("category=Pod Security").is_err_and(|e| e.0.contains("fieldSelector")));
    assert!(parse_label_selector("nope in (a)").is_err());
}

#[test]
fn properties() {
    let p = |s: &str| {
        parse_property(s).map(|c| match c {
            Condition::Property { key, test } => (key, test),
            other => panic!("{other:?}"),
        })
    };
    assert_eq!(
        p("score>=8"),
        Ok(("score".into(), PropertyTest::Number(Compare::GreaterOrEqual, 8.0)))
    );
    assert_eq!(
        p("cvss<4.5"),
        Ok(("cvss".into(), PropertyTest::Number(Compare::Less, 4.5)))
    );
    assert_eq!(
        p("a.b<=1e1"),
        Ok(("a.b".into(), PropertyTest::Number(Compare::LessOrEqual, 10.0)))
    );
    assert_eq!(
        p("score>7"),
        Ok(("score".into(), PropertyTest::Number(Compare::Greater, 7.0)))
    );
    assert_eq!(
        p("resource=apt"),
        Ok(("resource".into(), PropertyTest::In(s(&["apt"]))))
    );
    assert_eq!(
        p("resource==a=b"),
        Ok(("resource".into(), PropertyTest::In(s(&["a=b"]))))
    );
    assert_eq!(
        p("resource!=apt"),
        Ok(("resource".into(), PropertyTest::NotIn(s(&["apt"]))))
    );
    assert_eq!(p("score"), Ok(("score".into(), PropertyTest::Exists)));
    assert_eq!(p("!score"), Ok(("score".into(), PropertyTest::Missing)));
    for bad in ["", "!", "score>=high", "score>=NaN", "score<inf", "=x", ">=3"] {
        assert!(parse_property(bad).is_err(), "{bad}");
    }
}

#[test]
fn orders() {
    assert_eq!(parse_order(None, None), Ok(ResultOrder::Report));
    assert_eq!(
        parse_order(Some("severity"), None),
        Ok(ResultOrder::Severity { ascending: false })
    );
    assert_eq!(
        parse_order(Some("timestamp"), Some("asc")),
        Ok(ResultOrder::Timestamp { ascending: true })
    );
    assert!(parse_order(Some("name"), None).is_err());
    assert!(parse_order(Some("severity"), Some("up")).is_err());
}

proptest! {
    /// Any value survives apimachinery escaping in a field selector.
    #[test]
    fn escaped_values_round_trip(value in ".{0,30}") {
        let escaped = value.replace('\\', "\\\\").replace(',', "\\,").replace('=', "\\=");
        let (c, _) = parse_field_selector(&format!("policy={escaped},rule!={escaped}")).expect("parse");
        prop_assert_eq!(c, vec![
            Condition::In(ResultColumn::Policy, vec![value.clone()]),
            Condition::NotIn(ResultColumn::Rule, vec![value]),
        ]);
    }

    /// The parsers never panic, whatever they are given.
    #[test]
    fn never_panic(input in ".{0,40}") {
        let _ = parse_field_selector(&input);
        let _ = parse_label_selector(&input);
        let _ = parse_property(&input);
        let _ = parse_order(Some(&input), Some(&input));
    }
}
