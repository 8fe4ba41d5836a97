//! The bearer-token check in front of every route, wrapped only when `[auth] enabled = true`.
//!
//! Which scope a request needs is decided by [`required_scope`] from its method and path
//! alone, before routing, and the OpenAPI document is annotated from the same function
//! ([`docs::SecurityDocs`]), so the spec cannot disagree with what the server enforces. An
//! unknown path needs a read token too (so without one it is a 401, not a 404), and a path the
//! router might reach only through an unusual spelling (percent-encoding) is never mistaken
//! for an open or read-only one: those lists are exact paths.

pub mod docs;

use std::fmt;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header::AUTHORIZATION;
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpRequest, ResponseError, web};

use super::{ApiError, AppState};
use crate::auth::{Identity, Scope};

/// Paths anyone may call: liveness, the API documentation (so Swagger UI loads and its
/// Authorize button can be used), the root page, and the console (so its page loads and can
/// ask for a token; the data it shows comes from routes that need one).
const OPEN_PATHS: &[&str] = &["/health", "/openapi.json", "/docs", "/", "/ui"];

/// Folders whose every file is open: Swagger UI's and the console's assets.
const OPEN_PREFIXES: &[&str] = &["/docs/", "/ui/"];

/// POST routes that only read, so a `read` token may call them.
pub const READ_ONLY_POSTS: &[&str] = &[
    "/features/batch",
    "/get-online-features",
    "/get-historical-features",
];

/// The scope a request needs, or `None` for the open paths. Safe methods read; every other
/// method writes, except a POST to one of [`READ_ONLY_POSTS`].
pub fn required_scope(method: &Method, path: &str) -> Option<Scope> {
    if OPEN_PATHS.contains(&path) || OPEN_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return None;
    }
    let reads = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || (*method == Method::POST && READ_ONLY_POSTS.contains(&path));
    Some(if reads { Scope::Read } else { Scope::Write })
}

/// Why a request was not authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFailure {
    /// No `Authorization` header.
    Missing,
    /// An `Authorization` header that is not `Bearer <token>`.
    Malformed,
    /// A bearer token no configured hash matches.
    UnknownToken,
}

impl AuthFailure {
    /// The RFC 6750 `error` attribute of the `WWW-Authenticate` challenge (none when no
    /// credentials were sent).
    pub fn challenge_error(self) -> Option<&'static str> {
        match self {
            AuthFailure::Missing => None,
            AuthFailure::Malformed => Some("invalid_request"),
            AuthFailure::UnknownToken => Some("invalid_token"),
        }
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AuthFailure::Missing => {
                "this route needs a bearer token: send the header `Authorization: Bearer <token>`"
            }
            AuthFailure::Malformed => "the Authorization header must be `Bearer <token>`",
            AuthFailure::UnknownToken => "the bearer token is not one this server accepts",
        })
    }
}

/// The token of an `Authorization` header value: the scheme is case-insensitive (RFC 9110).
fn bearer_token(value: &[u8]) -> Result<&str, AuthFailure> {
    let value = std::str::from_utf8(value).map_err(|_| AuthFailure::Malformed)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(AuthFailure::Malformed)?;
    let token = token.trim();
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(AuthFailure::Malformed);
    }
    Ok(token)
}

/// The name of the token that authenticated `req`, when auth is on: what table and registry
/// history record as the writer. `None` without auth, or on a route that needs no token.
pub fn token_name(req: &HttpRequest) -> Option<String> {
    req.extensions().get::<Identity>().map(|i| i.name.clone())
}

/// The middleware: lets a request through when it needs no token or carries one of enough
/// scope; otherwise answers the 401 or 403 problem itself, so the request metrics (recorded
/// outside) still count it.
pub async fn authenticate<B: MessageBody>(
    req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let Some(needed) = required_scope(req.method(), req.path()) else {
        return Ok(next.call(req).await?.map_into_left_body());
    };
    match check(&req, needed) {
        Ok(identity) => {
            // Handlers that record who wrote (table and registry history) read it from here.
            req.extensions_mut().insert(identity);
            Ok(next.call(req).await?.map_into_left_body())
        }
        Err(error) => {
            let response = error.error_response();
            Ok(req.into_response(response).map_into_right_body())
        }
    }
}

fn check(req: &ServiceRequest, needed: Scope) -> Result<Identity, ApiError> {
    // The middleware is wrapped only when the state holds an authenticator, so a missing one
    // cannot happen; should it, the request is refused rather than let through.
    let auth = req
        .app_data::<web::Data<AppState>>()
        .and_then(|state| state.auth.clone())
        .ok_or(ApiError::Unauthorized(AuthFailure::UnknownToken))?;
    let header = req
        .headers()
        .get(AUTHORIZATION)
        .ok_or(ApiError::Unauthorized(AuthFailure::Missing))?;
    let token = bearer_token(header.as_bytes()).map_err(ApiError::Unauthorized)?;
    let identity = auth.verify(token).ok_or_else(|| {
        tracing::debug!(path = req.path(), "unknown bearer token");
        ApiError::Unauthorized(AuthFailure::UnknownToken)
    })?;
    if !identity.scope.allows(needed) {
        return Err(ApiError::Forbidden {
            token: identity.name.clone(),
            scope: identity.scope,
            needed,
            method: req.method().to_string(),
            path: req.path().to_owned(),
        });
    }
    tracing::debug!(token = %identity.name, path = req.path(), "authenticated");
    Ok(identity.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_writes_and_open_paths_are_told_apart() {
        let cases = [
            (Method::GET, "/health", None),
            (Method::GET, "/openapi.json", None),
            (Method::GET, "/docs", None),
            (Method::GET, "/docs/swagger-ui.css", None),
            (Method::GET, "/", None),
            (Method::GET, "/ui", None),
            (Method::GET, "/ui/", None),
            (Method::GET, "/ui/app.js", None),
            (Method::HEAD, "/ui/style.css", None),
            (Method::GET, "/features", Some(Scope::Read)),
            (Method::GET, "/metrics", Some(Scope::Read)),
            (Method::HEAD, "/features/a/b", Some(Scope::Read)),
            (Method::GET, "/no/such/route", Some(Scope::Read)),
            (Method::POST, "/features/batch", Some(Scope::Read)),
            (Method::POST, "/get-online-features", Some(Scope::Read)),
            (Method::POST, "/get-historical-features", Some(Scope::Read)),
            (Method::POST, "/features/a/b", Some(Scope::Write)),
            (Method::DELETE, "/features/a/b", Some(Scope::Write)),
            (Method::POST, "/push", Some(Scope::Write)),
            (Method::POST, "/materialize", Some(Scope::Write)),
            (Method::POST, "/registry/apply", Some(Scope::Write)),
            (Method::DELETE, "/cache", Some(Scope::Write)),
            (Method::PUT, "/get-online-features", Some(Scope::Write)),
            // Spellings the list does not hold exactly are never open nor read-only.
            (Method::POST, "/get-online-features/", Some(Scope::Write)),
            (Method::GET, "/health/", Some(Scope::Read)),
            (Method::GET, "/%68ealth", Some(Scope::Read)),
            (Method::GET, "/uix", Some(Scope::Read)),
        ];
        for (method, path, expected) in cases {
            assert_eq!(required_scope(&method, path), expected, "{method} {path}");
        }
    }

    #[test]
    fn only_well_formed_bearer_headers_yield_a_token() {
        assert_eq!(bearer_token(b"Bearer fs_abc"), Ok("fs_abc"));
        assert_eq!(bearer_token(b"bearer  fs_abc "), Ok("fs_abc"));
        for bad in [
            &b"fs_abc"[..],
            b"Basic dXNlcjpwdw==",
            b"Bearer",
            b"Bearer ",
            b"Bearer a b",
            b"Bearer \xff",
        ] {
            assert_eq!(
                bearer_token(bad),
                Err(AuthFailure::Malformed),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
