//! Reads: list pages and continue tokens, revisions not reached yet.

use super::*;

#[tokio::test]
async fn list_pages_with_continue_tokens_and_refuses_bad_ones() {
    let f = fixture();
    for name in ["a", "b", "c"] {
        create(&f, name).await;
    }
    let first = f
        .registry
        .list(
            def(),
            ListRequest {
                limit: Some(2),
                ..Default::default()
            },
        )
        .await
        .expect("list");
    let revision = f.store.revision().await.expect("revision");
    assert_eq!(first.revision, revision);
    let err = f
        .registry
        .list(
            def(),
            ListRequest {
                continue_token: Some("garbage".into()),
                ..Default::default()
            },
        )
        .await
        .err()
        .expect("bad token");
    assert!(matches!(err, Error::InvalidContinue(_)), "{err:?}");
    let err = f.registry.get(&target("zz")).await.expect_err("missing");
    assert!(err.is_not_found());
}

#[tokio::test]
async fn a_revision_not_reached_is_too_large_after_the_wait() {
    let f = fixture();
    create(&f, "r1").await;
    let err = f
        .registry
        .list(
            def(),
            ListRequest {
                revision: Some(1_000_000),
                ..Default::default()
            },
        )
        .await
        .err()
        .expect("too large");
    assert!(
        matches!(err, Error::TooLargeRevision { requested: 1_000_000 }),
        "{err:?}"
    );
}
