//! The door's checks, applied to every request before any route sees it.
//!
//! - Host must be exactly one of the `host:port` names this server answers to, so a DNS
//!   rebinding page (evil.example resolving to 127.0.0.1) is refused (Transmission
//!   CVE-2018-5702).
//! - Origin, when present, must be this server's own; `Origin: null` (sandboxed frames, file
//!   pages) is refused (ComfyUI GHSA-5xxr-jvhm-jxmj). Browsers send Origin on every cross-site
//!   request that could change state, and on every WebSocket or EventSource from another origin.
//! - API routes and the event stream need the per-launch token (as Jupyter does), compared in
//!   constant time. The event stream may carry it in the query string (EventSource cannot set
//!   headers); everything else takes it in `Authorization: Bearer`.

use axum::http::{HeaderMap, header};
use kiln_engine::{ApiError, ErrorCode};

/// The names and token one server run accepts.
#[derive(Debug, Clone)]
pub struct Guard {
    token: String,
    hosts: Vec<String>,
    origins: Vec<String>,
}

impl Guard {
    /// `hosts` are exact `host:port` strings; origins are derived as `http://` + host.
    pub fn new(token: String, hosts: Vec<String>) -> Self {
        let origins = hosts.iter().map(|h| format!("http://{h}")).collect();
        Self { token, hosts, origins }
    }

    pub fn token(&self) -> &str {
        &self.token
    }

    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    pub fn check_host(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
        if self.hosts.iter().any(|allowed| allowed.eq_ignore_ascii_case(host)) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::ForbiddenHost,
                format!("this server answers to {} only, not Host {host:?}", self.hosts.join(", ")),
            ))
        }
    }

    pub fn check_origin(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        let Some(origin) = headers.get(header::ORIGIN) else { return Ok(()) };
        let origin = origin.to_str().unwrap_or("");
        if origin != "null" && self.origins.iter().any(|allowed| allowed.eq_ignore_ascii_case(origin)) {
            Ok(())
        } else {
            Err(ApiError::new(
                ErrorCode::ForbiddenOrigin,
                format!("requests from pages at {origin:?} are refused; open Kiln from its own address"),
            ))
        }
    }

    /// `query_token` is the `token` query parameter, accepted only where headers cannot be set.
    pub fn check_token(&self, headers: &HeaderMap, query_token: Option<&str>) -> Result<(), ApiError> {
        let bearer =
            headers.get(header::AUTHORIZATION).and_then(|h| h.to_str().ok()).and_then(|h| h.strip_prefix("Bearer "));
        match bearer.or(query_token) {
            Some(given) if constant_time_eq(given.as_bytes(), self.token.as_bytes()) => Ok(()),
            Some(_) => {
                Err(ApiError::new(ErrorCode::Unauthorized, "the token is wrong; use the URL `kiln serve` printed"))
            }
            None => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "a token is required; open the URL `kiln serve` printed (it carries the token)",
            )),
        }
    }
}

/// Compares without stopping at the first difference, so timing does not leak the token.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A fresh 256-bit token, hex-encoded.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn guard() -> Guard {
        Guard::new("secret".into(), vec!["127.0.0.1:8790".into(), "localhost:8790".into()])
    }

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(name.clone(), HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn hosts_must_match_exactly() {
        let g = guard();
        assert!(g.check_host(&headers(&[(header::HOST, "127.0.0.1:8790")])).is_ok());
        assert!(g.check_host(&headers(&[(header::HOST, "LOCALHOST:8790")])).is_ok());
        for bad in ["127.0.0.1", "127.0.0.1:8791", "evil.example:8790", "127.0.0.1:8790.evil.example"] {
            assert_eq!(g.check_host(&headers(&[(header::HOST, bad)])).unwrap_err().code, ErrorCode::ForbiddenHost);
        }
        assert!(g.check_host(&HeaderMap::new()).is_err());
    }

    #[test]
    fn origins_are_ours_or_absent() {
        let g = guard();
        assert!(g.check_origin(&HeaderMap::new()).is_ok());
        assert!(g.check_origin(&headers(&[(header::ORIGIN, "http://localhost:8790")])).is_ok());
        for bad in ["null", "http://evil.example", "https://127.0.0.1:8790", "http://127.0.0.1:8791"] {
            assert_eq!(
                g.check_origin(&headers(&[(header::ORIGIN, bad)])).unwrap_err().code,
                ErrorCode::ForbiddenOrigin
            );
        }
    }

    #[test]
    fn tokens_come_by_header_or_where_allowed_by_query() {
        let g = guard();
        assert!(g.check_token(&headers(&[(header::AUTHORIZATION, "Bearer secret")]), None).is_ok());
        assert!(g.check_token(&HeaderMap::new(), Some("secret")).is_ok());
        assert!(g.check_token(&HeaderMap::new(), None).is_err());
        assert!(g.check_token(&headers(&[(header::AUTHORIZATION, "Bearer secreT")]), None).is_err());
        assert!(g.check_token(&headers(&[(header::AUTHORIZATION, "secret")]), None).is_err());
    }

    #[test]
    fn tokens_are_long_and_fresh() {
        let (a, b) = (new_token(), new_token());
        assert_eq!(a.len(), 64);
        assert_ne!(a, b);
    }
}
