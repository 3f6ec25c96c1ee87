//! Where a request's access token comes from, and the one rule a cookie adds.
//!
//! A token arrives in `Authorization: Bearer`, as `?access_token=` on a socket upgrade (the least
//! safe way: URLs end up in proxy logs and browser history; this server never logs it), or, when
//! `auth.cookie_name` is set, in that cookie. Whichever it is, `Authenticator` verifies it alike.
//!
//! A browser attaches cookies to requests that *other* sites start, so a request authenticated by
//! cookie is accepted only with an `Origin` in `http.allowed_origins` when it could act for the
//! user: a socket upgrade (cross-site WebSocket hijacking; browsers always send `Origin` on one)
//! and a state-changing method (CSRF). One without `Origin` is refused too: every current browser
//! sends it on those requests, so only an old browser or a non-browser client omits it, and
//! neither needs the cookie. A bearer or query token is one the page's own script had to read and
//! attach, which no other site can do, so those requests are not checked.
//!
//! This module never touches the admin listener: operators use bearer tokens only.

use headers::{Cookie, HeaderMapExt};
use warp::http::{header, HeaderMap};

use crate::auth::bearer;
use crate::error::ApiError;

/// How a request carried its token. Named in logs instead of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Header,
    Query,
    Cookie,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Via::Header => "header",
            Via::Query => "query",
            Via::Cookie => "cookie",
        }
    }
}

/// A token as the request presented it, not yet verified. Deliberately not `Debug`, so no log
/// line can print one by accident.
pub struct Presented {
    pub token: String,
    pub via: Via,
}

impl Presented {
    /// Refuses a cookie-authenticated request whose `Origin` is missing or not allowed. Call it
    /// for requests that could act for the user (see the module doc); others pass.
    pub fn check_origin(&self, headers: &HeaderMap, allowed: &[String]) -> Result<(), ApiError> {
        if self.via != Via::Cookie {
            return Ok(());
        }
        let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        match origin {
            Some(o) if allowed.iter().any(|a| a == o) => Ok(()),
            _ => Err(ApiError::forbidden(
                "origin_not_allowed",
                "a request authenticated by cookie must come from an origin in \
                 http.allowed_origins",
            )),
        }
    }
}

/// An HTTP request's token: the bearer header, else the cookie.
pub fn from_http(headers: &HeaderMap, cookie_name: Option<&str>) -> Option<Presented> {
    from_header(headers).or_else(|| from_cookie(headers, cookie_name?))
}

/// A socket upgrade's token: `access_token` in the query, else the bearer header, else the
/// cookie. With none, the socket must authenticate with its first frame.
pub fn from_upgrade(
    query_token: Option<&str>,
    headers: &HeaderMap,
    cookie_name: Option<&str>,
) -> Option<Presented> {
    query_token
        .map(|t| Presented {
            token: t.to_string(),
            via: Via::Query,
        })
        .or_else(|| from_http(headers, cookie_name))
}

fn from_header(headers: &HeaderMap) -> Option<Presented> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer)?;
    Some(Presented {
        token: token.to_string(),
        via: Via::Header,
    })
}

/// The named cookie's value; an empty one counts as absent, as a logged-out site leaves it.
fn from_cookie(headers: &HeaderMap, name: &str) -> Option<Presented> {
    let cookies = headers.typed_get::<Cookie>()?;
    let value = cookies.get(name)?.trim_matches('"');
    (!value.is_empty()).then(|| Presented {
        token: value.to_string(),
        via: Via::Cookie,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use warp::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    fn found(p: Option<Presented>) -> Option<(String, Via)> {
        p.map(|p| (p.token, p.via))
    }

    #[test]
    fn the_header_wins_over_the_cookie_and_the_query_over_both() {
        let h = headers(&[
            ("authorization", "Bearer from-header"),
            ("cookie", "theme=dark; access_token=from-cookie"),
        ]);
        let name = Some("access_token");
        assert_eq!(
            found(from_http(&h, name)),
            Some(("from-header".into(), Via::Header))
        );
        assert_eq!(
            found(from_upgrade(Some("from-query"), &h, name)),
            Some(("from-query".into(), Via::Query))
        );
        let only_cookie = headers(&[("cookie", "theme=dark; access_token=\"from-cookie\"")]);
        assert_eq!(
            found(from_upgrade(None, &only_cookie, name)),
            Some(("from-cookie".into(), Via::Cookie))
        );
    }

    #[test]
    fn cookies_are_ignored_unless_named_and_empty_ones_are_absent() {
        let h = headers(&[("cookie", "access_token=t")]);
        assert!(from_http(&h, None).is_none(), "cookie auth is off");
        assert!(from_http(&h, Some("other")).is_none());
        let empty = headers(&[("cookie", "access_token=; x=1")]);
        assert!(from_http(&empty, Some("access_token")).is_none());
        let garbage = headers(&[("cookie", ";;=;access_token")]);
        assert!(from_http(&garbage, Some("access_token")).is_none());
    }

    #[test]
    fn only_cookie_requests_need_an_allowed_origin() {
        let allowed = vec!["https://app.example".to_string()];
        let cookie = Presented {
            token: "t".into(),
            via: Via::Cookie,
        };
        let from = |o: &'static str| headers(&[("origin", o)]);
        assert!(cookie
            .check_origin(&from("https://app.example"), &allowed)
            .is_ok());
        for refused in [from("https://evil.example"), from("null"), HeaderMap::new()] {
            let e = cookie.check_origin(&refused, &allowed).unwrap_err();
            assert_eq!((e.kind.status(), e.code), (403, "origin_not_allowed"));
        }
        for via in [Via::Header, Via::Query] {
            let p = Presented {
                token: "t".into(),
                via,
            };
            assert!(p
                .check_origin(&from("https://evil.example"), &allowed)
                .is_ok());
            assert!(p.check_origin(&HeaderMap::new(), &allowed).is_ok());
        }
    }
}
