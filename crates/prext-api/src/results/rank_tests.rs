use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

#[test]
fn sort_values() {
    assert_eq!(GroupRank::parse(None), Ok(GroupRank::Key));
    assert_eq!(GroupRank::parse(Some("group")), Ok(GroupRank::Key));
    assert_eq!(GroupRank::parse(Some("total")), Ok(GroupRank::Total));
    assert_eq!(
        GroupRank::parse(Some("fail")),
        Ok(GroupRank::Result("fail".into()))
    );
    assert_eq!(
        GroupRank::parse(Some("fail.critical")),
        Ok(GroupRank::Cell("fail".into(), "critical".into()))
    );
    for bad in [
        "count",
        "fail.",
        ".high",
        "failed.high",
        "fail.hi gh",
        "fail.high.x",
    ] {
        let e = GroupRank::parse(Some(bad)).expect_err(bad);
        assert!(e.0.contains("sort: unsupported value"), "{bad}: {}", e.0);
    }
    for s in ["group", "total", "warn", "error.low"] {
        assert_eq!(GroupRank::parse(Some(s)).map(|r| r.tag()), Ok(s.to_owned()));
    }
}

fn item(group: &str, cells: &[(&str, &str, u64)]) -> SummaryItem {
    SummaryItem {
        group: group.into(),
        counts: cells
            .iter()
            .map(|(r, s, n)| (((*r).to_owned(), (*s).to_owned()), *n))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn groups(items: &[SummaryItem]) -> Vec<&str> {
    items.iter().map(|i| i.group.as_str()).collect()
}

#[test]
fn pages_follow_the_rank_then_the_group() {
    let items = vec![
        item("b", &[("fail", "high", 2), ("pass", "", 5)]),
        item("a", &[("fail", "high", 2)]),
        item("", &[("fail", "critical", 3)]),
        item("c", &[("warn", "low", 9)]),
    ];
    let page = |rank: GroupRank, limit, after| GroupPage { rank, limit, after };
    let (p, more) = page_items(items.clone(), &page(GroupRank::Key, 2, None));
    assert_eq!((groups(&p), more), (vec!["", "a"], true));
    let (p, _) = page_items(items.clone(), &page(GroupRank::Total, 10, None));
    assert_eq!(groups(&p), ["c", "b", "", "a"]);
    let (p, _) = page_items(items.clone(), &page(GroupRank::Result("fail".into()), 10, None));
    assert_eq!(groups(&p), ["", "a", "b", "c"]);
    let cell = GroupRank::Cell("fail".into(), "high".into());
    let (p, more) = page_items(items.clone(), &page(cell.clone(), 1, None));
    assert_eq!((groups(&p), more), (vec!["a"], true));
    let after = Some(GroupCursor {
        value: 2,
        group: "a".into(),
    });
    let (p, more) = page_items(items, &page(cell, 1, after));
    assert_eq!((groups(&p), more), (vec!["b"], true));
}

#[test]
fn paging_parameters() {
    assert_eq!(parse_paging(None, None, None, "policy"), Ok(SummaryPaging::All));
    assert_eq!(
        parse_paging(Some("total"), None, None, "policy"),
        Ok(SummaryPaging::Sorted(GroupRank::Total))
    );
    let want = SummaryPaging::Page {
        page: GroupPage {
            rank: GroupRank::Cell("fail".into(), "high".into()),
            limit: 10,
            after: None,
        },
        revision: None,
    };
    assert_eq!(
        parse_paging(Some("fail.high"), Some("10"), None, "policy"),
        Ok(want)
    );
    assert_eq!(
        parse_paging(None, Some("999999"), None, "policy"),
        Ok(SummaryPaging::Page {
            page: GroupPage {
                rank: GroupRank::Key,
                limit: MAX_GROUPS,
                after: None
            },
            revision: None
        })
    );
    assert!(
        parse_paging(None, Some("ten"), None, "policy").is_err_and(|e| e.0.contains("limit: invalid value"))
    );
    let token = SummaryToken {
        revision: 4,
        group_by: "policy".into(),
        rank: GroupRank::Total,
        cursor: GroupCursor {
            value: 7,
            group: "p".into(),
        },
    }
    .encode();
    match parse_paging(Some("total"), Some("5"), Some(&token), "policy") {
        Ok(SummaryPaging::Page { page, revision }) => {
            assert_eq!(revision, Some(4));
            assert_eq!(page.after.map(|c| (c.value, c.group)), Some((7, "p".to_owned())));
        }
        other => panic!("{other:?}"),
    }
    assert!(parse_paging(Some("fail"), Some("5"), Some(&token), "policy")
        .is_err_and(|e| e.0.contains("invalid continue token")));
    assert!(parse_paging(Some("total"), Some("5"), Some(&token), "namespace").is_err());
    let items = vec![item("a", &[]), item("b", &[]), item("c", &[])];
    assert_eq!(groups(&in_order(items, &["c".into(), "a".into()])), ["c", "a"]);
}

#[test]
fn tokens_resume_only_their_own_list() {
    let t = SummaryToken {
        revision: 9,
        group_by: "policy".into(),
        rank: GroupRank::Cell("fail".into(), "high".into()),
        cursor: GroupCursor {
            value: 3,
            group: "p1".into(),
        },
    };
    let s = t.encode();
    assert_eq!(SummaryToken::decode(&s, "policy", &t.rank), Ok(t.clone()));
    assert!(SummaryToken::decode(&s, "namespace", &t.rank).is_err());
    assert!(SummaryToken::decode(&s, "policy", &GroupRank::Total).is_err());
    assert!(SummaryToken::decode("garbage", "policy", &t.rank).is_err());
}

proptest! {
    #[test]
    fn tokens_round_trip(group in ".{0,30}", value in any::<u64>(), rv in any::<i64>()) {
        let t = SummaryToken {
            revision: rv,
            group_by: "namespace".into(),
            rank: GroupRank::Total,
            cursor: GroupCursor { value, group },
        };
        prop_assert_eq!(SummaryToken::decode(&t.encode(), "namespace", &GroupRank::Total), Ok(t));
    }

    /// Walking the pages yields every group once, in the order of one sorted list.
    #[test]
    fn walking_pages_sees_every_group_once(
        counts in proptest::collection::btree_map("[a-e]{0,2}", (0u64..4, 0u64..4), 0..12),
        limit in 1usize..5,
        by_total in any::<bool>(),
    ) {
        let items: Vec<SummaryItem> = counts
            .iter()
            .map(|(g, (f, p))| item(g, &[("fail", "high", *f), ("pass", "", *p)]))
            .collect();
        let rank = if by_total { GroupRank::Total } else { GroupRank::Result("fail".into()) };
        let (whole, _) = page_items(items.clone(), &GroupPage { rank: rank.clone(), limit: usize::MAX, after: None });
        let mut seen = Vec::new();
        let mut after = None;
        loop {
            let (p, more) = page_items(items.clone(), &GroupPage { rank: rank.clone(), limit, after: after.clone() });
            after = p.last().map(|i| GroupCursor { value: rank.value(i), group: i.group.clone() });
            seen.extend(p);
            if !more {
                break;
            }
        }
        prop_assert_eq!(groups(&seen), groups(&whole));
    }
}
