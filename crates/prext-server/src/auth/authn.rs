//! Authentication: who is calling, in upstream's `DelegatingAuthenticatorConfig` order.
//!
//! 1. **Front proxy** (requestheader): a client certificate that the front-proxy CA vouches for
//!    (and whose CN is allowed, see [`super::trust`]) makes the `X-Remote-*` headers trusted:
//!    user = the first non-empty username header, uid = the first non-empty uid header, groups =
//!    every value of every group header, extra = every header with an extra prefix, keyed by the
//!    rest of its name lower-cased and percent-unescaped (`headerrequest/requestheader.go`).
//! 2. **Client certificate** vouched for by the client CA: user = CN, groups = O.
//! 3. **Bearer token** reviewed by kube-apiserver (`TokenReview`, authentication.k8s.io/v1);
//!    answers are cached, and the `Authorization` header is removed once it authenticated.
//!
//! The front-proxy headers are removed from every request, whoever sent them, before anything
//! else sees the request. Every authenticated user gets the `system:authenticated` group
//! (upstream's `AuthenticatedGroupAdder`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderName, AUTHORIZATION};
use http::HeaderMap;
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::PostParams;
use kube::Api;
use sha2::{Digest as _, Sha256};

use super::cache::TtlCache;
use super::trust::{ClientTrust, RequestHeaderConfig};
use super::UserInfo;
use crate::tls::{ClientIdentity, Verifier};

/// The group every authenticated user belongs to.
pub const AUTHENTICATED_GROUP: &str = "system:authenticated";
/// Header names that are always stripped, whatever the configured front-proxy headers are.
const REMOTE_PREFIX: &str = "x-remote-";
/// How long a TokenReview call may take (upstream's webhook timeout).
const REVIEW_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many TokenReview answers are cached.
const CACHE_CAPACITY: usize = 4096;

/// Why a request carrying credentials was not authenticated (answered 401).
#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    /// kube-apiserver reviewed the bearer token and refused it.
    #[error("invalid bearer token{}", if .0.is_empty() { String::new() } else { format!(": {}", .0) })]
    InvalidToken(String),
    /// The TokenReview call failed.
    #[error("token review failed: {0}")]
    Review(String),
}

/// Decides who is calling (see the module documentation).
#[derive(Debug)]
pub struct Authenticator {
    trust: Arc<ClientTrust>,
    tokens: Option<TokenReviewer>,
}

impl Authenticator {
    /// An authenticator over `trust`'s certificates, and bearer tokens when `tokens` is set.
    pub fn new(trust: Arc<ClientTrust>, tokens: Option<TokenReviewer>) -> Self {
        Self { trust, tokens }
    }

    /// Authenticates a request from its headers and its connection's verified client
    /// certificate. Strips the front-proxy headers (and, on token success, `Authorization`).
    /// `Ok(None)`: no credentials at all.
    pub async fn authenticate(
        &self,
        headers: &mut HeaderMap,
        certificate: Option<&ClientIdentity>,
    ) -> Result<Option<UserInfo>, AuthnError> {
        let proxy = self.trust.requestheader();
        let proxied = match (certificate, &proxy) {
            (Some(id), Some(rh)) if id.verified_by == Verifier::RequestHeader => {
                user_from_headers(headers, rh)
            }
            _ => None,
        };
        strip_proxy_headers(headers, proxy.as_deref());
        if let Some(user) = proxied {
            return Ok(Some(user.with_authenticated_group()));
        }
        if let Some(id) = certificate.filter(|id| id.verified_by == Verifier::ClientCa) {
            let user = UserInfo {
                name: id.user.clone(),
                groups: id.groups.clone(),
                ..UserInfo::default()
            };
            return Ok(Some(user.with_authenticated_group()));
        }
        let (Some(tokens), Some(token)) = (&self.tokens, bearer_token(headers)) else {
            return Ok(None);
        };
        let user = tokens.review(&token).await?;
        headers.remove(AUTHORIZATION);
        Ok(Some(user.with_authenticated_group()))
    }
}

/// The identity asserted by a front proxy's headers; `None` without a username.
pub fn user_from_headers(headers: &HeaderMap, rh: &RequestHeaderConfig) -> Option<UserInfo> {
    let first = |names: &[String]| -> Option<String> {
        names
            .iter()
            .filter_map(|n| header_name(n))
            .filter_map(|n| headers.get(n))
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .find(|v| !v.is_empty())
    };
    let name = first(&rh.username_headers)?;
    let uid = first(&rh.uid_headers).unwrap_or_default();
    let groups = rh
        .group_headers
        .iter()
        .filter_map(|n| header_name(n))
        .flat_map(|n| headers.get_all(n))
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .filter(|v| !v.is_empty())
        .collect();
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for prefix in &rh.extra_headers_prefix {
        let prefix = prefix.to_ascii_lowercase();
        for (header, value) in headers {
            if let Some(key) = header.as_str().strip_prefix(prefix.as_str()) {
                extra
                    .entry(unescape_extra_key(key))
                    .or_default()
                    .push(String::from_utf8_lossy(value.as_bytes()).into_owned());
            }
        }
    }
    Some(UserInfo {
        name,
        uid,
        groups,
        extra,
    })
}

/// Removes the front-proxy headers: the configured ones and every `X-Remote-*` header.
pub fn strip_proxy_headers(headers: &mut HeaderMap, rh: Option<&RequestHeaderConfig>) {
    let mut prefixes = vec![REMOTE_PREFIX.to_owned()];
    let mut exact = Vec::new();
    if let Some(rh) = rh {
        exact.extend(
            rh.username_headers
                .iter()
                .chain(&rh.uid_headers)
                .chain(&rh.group_headers),
        );
        prefixes.extend(rh.extra_headers_prefix.iter().map(|p| p.to_ascii_lowercase()));
    }
    let doomed: Vec<HeaderName> = headers
        .keys()
        .filter(|name| {
            let name = name.as_str();
            prefixes.iter().any(|p| name.starts_with(p.as_str()))
                || exact.iter().any(|e| e.eq_ignore_ascii_case(name))
        })
        .cloned()
        .collect();
    for name in doomed {
        headers.remove(name);
    }
}

fn header_name(name: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok()
}

/// `url.PathUnescape` of an extra key; a key with a malformed escape (or one that does not
/// decode to UTF-8) is kept as written, as upstream does.
pub fn unescape_extra_key(key: &str) -> String {
    let bytes = key.as_bytes();
    let well_formed = bytes.iter().enumerate().all(|(i, b)| {
        *b != b'%'
            || (bytes.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
                && bytes.get(i + 2).is_some_and(u8::is_ascii_hexdigit))
    });
    if !well_formed {
        return key.to_owned();
    }
    percent_encoding::percent_decode_str(key)
        .decode_utf8()
        .map_or_else(|_| key.to_owned(), |s| s.into_owned())
}

/// The token of an `Authorization: Bearer <token>` header (upstream's `bearertoken`).
pub fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?.trim();
    let mut parts = value.splitn(3, ' ');
    let scheme = parts.next()?;
    let token = parts.next()?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_owned())
}

/// Reviews bearer tokens with kube-apiserver and caches the answers.
pub struct TokenReviewer {
    api: Api<TokenReview>,
    ttl: Duration,
    /// Keyed by the token's SHA-256, so tokens are not kept in memory.
    cache: TtlCache<[u8; 32], Result<UserInfo, String>>,
}

impl std::fmt::Debug for TokenReviewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenReviewer")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TokenReviewer {
    /// A reviewer calling `client`'s cluster; answers (acceptances and refusals) are cached for
    /// `ttl`, failed calls are not.
    pub fn new(client: kube::Client, ttl: Duration) -> Self {
        Self {
            api: Api::all(client),
            ttl,
            cache: TtlCache::new(CACHE_CAPACITY),
        }
    }

    /// The user a token belongs to.
    pub async fn review(&self, token: &str) -> Result<UserInfo, AuthnError> {
        let key: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        if let Some(answer) = self.cache.get(&key) {
            return answer.map_err(AuthnError::InvalidToken);
        }
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: token.to_owned(),
                audiences: None,
            },
            ..TokenReview::default()
        };
        let params = PostParams::default();
        let answer = tokio::time::timeout(REVIEW_TIMEOUT, self.api.create(&params, &review))
            .await
            .map_err(|_| AuthnError::Review("timed out".to_owned()))?
            .map_err(|e| AuthnError::Review(e.to_string()))?;
        let status = answer.status.unwrap_or_default();
        let result = match status.user {
            Some(user) if status.authenticated == Some(true) => Ok(UserInfo {
                name: user.username.unwrap_or_default(),
                uid: user.uid.unwrap_or_default(),
                groups: user.groups.unwrap_or_default(),
                extra: user.extra.unwrap_or_default(),
            }),
            _ => Err(status.error.unwrap_or_default()),
        };
        self.cache.insert(key, result.clone(), self.ttl);
        result.map_err(AuthnError::InvalidToken)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use proptest::prelude::*;

    fn front_proxy() -> RequestHeaderConfig {
        RequestHeaderConfig {
            username_headers: vec!["X-Remote-User".into(), "X-Other-User".into()],
            uid_headers: vec!["X-Remote-Uid".into()],
            group_headers: vec!["X-Remote-Group".into(), "X-Other-Group".into()],
            extra_headers_prefix: vec!["X-Remote-Extra-".into()],
            ..Default::default()
        }
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        map
    }

    #[test]
    fn front_proxy_headers_follow_requestheader_go() {
        let h = headers(&[
            ("x-remote-user", ""),
            ("x-other-user", "alice"),
            ("x-remote-uid", "42"),
            ("x-remote-group", "g1"),
            ("x-remote-group", "g2"),
            ("x-other-group", "g3"),
            ("x-remote-extra-scopes", "a"),
            ("x-remote-extra-scopes", "b"),
            ("x-remote-extra-example.org%2fteam", "t"),
        ]);
        let user = user_from_headers(&h, &front_proxy()).expect("user");
        assert_eq!(user.name, "alice", "the first non-empty username header");
        assert_eq!(user.uid, "42");
        assert_eq!(user.groups, ["g1", "g2", "g3"]);
        assert_eq!(user.extra["scopes"], ["a", "b"]);
        assert_eq!(user.extra["example.org/team"], ["t"]);
        assert_eq!(user.extra.len(), 2);
        assert!(user_from_headers(&headers(&[("x-remote-group", "g")]), &front_proxy()).is_none());
    }

    #[test]
    fn proxy_headers_are_stripped() {
        let mut h = headers(&[
            ("x-remote-user", "u"),
            ("x-other-user", "u"),
            ("x-remote-whatever", "w"),
            ("accept", "application/json"),
        ]);
        strip_proxy_headers(&mut h, Some(&front_proxy()));
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("accept"));
        let mut h = headers(&[("x-remote-user", "u"), ("x-other-user", "u")]);
        strip_proxy_headers(&mut h, None);
        assert_eq!(h.len(), 1, "without a front proxy only X-Remote-* goes");
    }

    #[test]
    fn bearer_tokens_parse_like_upstream() {
        let token = |v: &str| bearer_token(&headers(&[("authorization", v)]));
        assert_eq!(token("Bearer abc").as_deref(), Some("abc"));
        assert_eq!(token("bearer abc extra").as_deref(), Some("abc"));
        assert_eq!(token("  Bearer abc  ").as_deref(), Some("abc"));
        assert_eq!(token("Bearer  abc"), None, "a space before the token");
        assert_eq!(token("Basic abc"), None);
        assert_eq!(token("Bearer"), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn extra_keys_unescape_strictly() {
        assert_eq!(unescape_extra_key("a%2fb"), "a/b");
        assert_eq!(unescape_extra_key("a%zzb"), "a%zzb");
        assert_eq!(unescape_extra_key("a%2"), "a%2");
        assert_eq!(unescape_extra_key("%ff"), "%ff", "not UTF-8");
        assert_eq!(unescape_extra_key("a+b"), "a+b");
    }

    proptest! {
        #[test]
        fn escaped_extra_keys_round_trip(key in "\\PC{0,24}") {
            let escaped = percent_encoding::utf8_percent_encode(
                &key,
                percent_encoding::NON_ALPHANUMERIC,
            )
            .to_string();
            prop_assert_eq!(unescape_extra_key(&escaped), key);
        }

        #[test]
        fn unescape_never_panics(key in "[%0-9a-fA-Fz]{0,12}") {
            let _ = unescape_extra_key(&key);
        }
    }
}
