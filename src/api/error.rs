//! The only place that decides HTTP statuses.
//!
//! Every failure leaves as `application/problem+json` (RFC 9457) with a stable snake_case
//! `code`; validation failures add `errors: [{field, message}]`. Store errors are mapped (in
//! `error/classify.rs`) with an exhaustive `match` (no catch-all arm), so a new failure kind
//! cannot silently become a 500.

use actix_web::http::StatusCode;
use actix_web::http::header::{CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::AuthFailure;
use crate::auth::Scope;
use crate::model::NameError;
use crate::store::{Referrers, RegistryError, StorageError, StoreError};

mod classify;

/// The media type of every error body.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The `Retry-After` (seconds) of the 503s that pass by themselves: the object store
/// unreachable, a commit lost to other writers, a table file rewritten under a read. One
/// second is the poll interval's default, so a retry lands after the next look at the store.
pub const RETRY_AFTER_SECONDS: u32 = 1;

/// The problem codes answered with a `Retry-After` header ([`RETRY_AFTER_SECONDS`]).
pub const RETRYABLE_CODES: [&str; 4] = [
    "storage_unavailable",
    "storage_contended",
    "registry_contended",
    "table_file_changing",
];

/// One field-level validation failure.
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct FieldError {
    /// The request part at fault: a query parameter, a body field (`records[3].age`) or a
    /// path segment.
    #[schema(example = "limit")]
    pub field: String,
    /// What is wrong with it.
    #[schema(example = "must be a non-negative integer, got \"-1\"")]
    pub message: String,
}

/// An RFC 9457 problem: the body of every non-2xx response.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "/problems/table-not-found",
    "title": "Table not found",
    "status": 404,
    "detail": "table \"user_profiles\" not found",
    "code": "table_not_found"
}))]
pub struct Problem {
    /// A URI reference naming the problem type, derived from `code`.
    #[serde(rename = "type")]
    pub problem_type: String,
    /// A short, human-readable summary of the problem type.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What went wrong in this occurrence, in a sentence.
    pub detail: String,
    /// A stable machine-readable code (`table_not_found`, `invalid_parameter`, ...).
    pub code: String,
    /// Field-level failures, for validation problems.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// A failure of an HTTP request, before or after the store was called.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The store reported a failure.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A path segment is not a valid group or table name.
    #[error("{source}")]
    InvalidName {
        /// Which path segment or body field.
        field: String,
        /// Why.
        source: NameError,
    },
    /// A query parameter is malformed or out of range.
    #[error("invalid query parameter {parameter:?}: {message}")]
    InvalidParameter {
        /// The parameter.
        parameter: String,
        /// Why.
        message: String,
    },
    /// The query string names parameters the route does not take (a typo, or a filter the
    /// route does not have, such as `?user_id=5` on a page): refused rather than ignored, so
    /// an unfiltered answer is never mistaken for a filtered one.
    #[error("unknown query parameter(s) {}; this route takes {}", quoted(.names), quoted_or_none(.allowed))]
    UnknownQueryParameters {
        /// The unknown names, in request order.
        names: Vec<String>,
        /// The parameters the route takes.
        allowed: &'static [&'static str],
    },
    /// Query parameters that exclude each other were given together (`version` and `as_of`
    /// could name two different versions).
    #[error("give only one of {}", quoted(.names))]
    ConflictingParameters {
        /// The parameters, of which at most one may be given.
        names: &'static [&'static str],
    },
    /// The body is not syntactically valid JSON.
    #[error("the request body is not valid JSON: {0}")]
    MalformedJson(String),
    /// The body is JSON but not of the expected shape or values.
    #[error("{detail}")]
    InvalidBody {
        /// What is wrong.
        detail: String,
        /// Per-field failures.
        errors: Vec<FieldError>,
    },
    /// The body's content type is not accepted.
    #[error("unsupported content type {0}; send application/json")]
    UnsupportedMediaType(String),
    /// The body is larger than the configured limit.
    #[error("the request body exceeds the limit of {limit_bytes} bytes (api.max_body_mb)")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit_bytes: usize,
    },
    /// An upload is neither JSON, Parquet nor an Arrow stream.
    #[error(
        "unsupported content type {0}; send application/json, application/vnd.apache.parquet or application/vnd.apache.arrow.stream"
    )]
    UnsupportedUpload(String),
    /// An answer would exceed a configured row limit in the format asked for.
    #[error("{detail}")]
    ResultTooLarge {
        /// What the limit is and what to do instead.
        detail: String,
    },
    /// The answer could not be encoded (a fault of the server, not of the request).
    #[error("the answer could not be encoded: {0}")]
    Encoding(String),
    /// No route matches the path.
    #[error("no route matches {method} {path}")]
    RouteNotFound {
        /// The method.
        method: String,
        /// The path.
        path: String,
    },
    /// The path exists but not with this method.
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed {
        /// The method.
        method: String,
        /// The path.
        path: String,
    },
    /// Auth is on and the request carries no token this server accepts.
    #[error("{0}")]
    Unauthorized(AuthFailure),
    /// Auth is on and the token's scope does not cover the request.
    #[error("token {token:?} has scope {scope}; {method} {path} needs scope {needed}")]
    Forbidden {
        /// The token's configured name (never the token).
        token: String,
        /// What it may do.
        scope: Scope,
        /// What the request needs.
        needed: Scope,
        /// The method.
        method: String,
        /// The path.
        path: String,
    },
}

impl ApiError {
    /// A validation failure of one body field.
    pub fn invalid_body_field(field: impl Into<String>, message: impl Into<String>) -> Self {
        let (field, message) = (field.into(), message.into());
        ApiError::InvalidBody {
            detail: format!("invalid field {field:?}: {message}"),
            errors: vec![FieldError { field, message }],
        }
    }

    /// The RFC 6750 `WWW-Authenticate` challenge of the auth failures.
    fn challenge(&self) -> Option<String> {
        const REALM: &str = "Bearer realm=\"featurestore\"";
        match self {
            ApiError::Unauthorized(failure) => Some(match failure.challenge_error() {
                Some(error) => format!("{REALM}, error=\"{error}\""),
                None => REALM.to_owned(),
            }),
            ApiError::Forbidden { needed, .. } => Some(format!(
                "{REALM}, error=\"insufficient_scope\", scope=\"{needed}\""
            )),
            _ => None,
        }
    }

    /// Seconds a client should wait before retrying, for the failures that pass by
    /// themselves; `None` for the others (retrying them unchanged cannot succeed, or, for
    /// `data_root_not_writable` and `online_store_unavailable`, needs an operator).
    fn retry_after(&self) -> Option<u32> {
        let (_, code, _) = self.classify();
        RETRYABLE_CODES
            .contains(&code)
            .then_some(RETRY_AFTER_SECONDS)
    }

    fn field_errors(&self) -> Vec<FieldError> {
        let one = |field: String, message: String| vec![FieldError { field, message }];
        match self {
            ApiError::InvalidName { field, source } => one(field.clone(), source.to_string()),
            ApiError::InvalidParameter { parameter, message } => {
                one(parameter.clone(), message.clone())
            }
            ApiError::InvalidBody { errors, .. } => errors.clone(),
            ApiError::ConflictingParameters { names } => names
                .iter()
                .map(|n| FieldError {
                    field: (*n).to_owned(),
                    message: format!("cannot be combined with {}", quoted(names)),
                })
                .collect(),
            ApiError::UnknownQueryParameters { names, .. } => names
                .iter()
                .map(|n| FieldError {
                    field: n.clone(),
                    message: "unknown query parameter".into(),
                })
                .collect(),
            ApiError::Store(StoreError::Storage(StorageError::InvalidRecords {
                column,
                row,
                message,
            })) => {
                let field = match (row, column) {
                    (Some(r), Some(c)) => format!("records[{r}].{c}"),
                    (None, Some(c)) => c.clone(),
                    _ => "records".to_owned(),
                };
                one(field, message.clone())
            }
            ApiError::Store(StoreError::Storage(StorageError::UnknownColumns {
                unknown, ..
            })) => one(
                "columns".into(),
                format!("unknown column(s): {}", unknown.join(", ")),
            ),
            ApiError::Store(StoreError::Registry(RegistryError::Invalid(errors))) => errors
                .iter()
                .map(|e| FieldError {
                    field: e.field.clone(),
                    message: e.message.clone(),
                })
                .collect(),
            ApiError::Store(StoreError::Registry(RegistryError::InUse {
                kind,
                name,
                by,
                names,
            })) => names
                .iter()
                .map(|n| FieldError {
                    field: match by {
                        Referrers::FeatureViews => "feature_views".into(),
                        Referrers::FeatureServices => "feature_services".into(),
                    },
                    message: format!("{n} uses {kind} {name}"),
                })
                .collect(),
            ApiError::Store(StoreError::UnknownNames { kind, field, names }) => names
                .iter()
                .map(|n| FieldError {
                    field: (*field).to_owned(),
                    message: format!("unknown {kind} {n:?}"),
                })
                .collect(),
            ApiError::Store(StoreError::InvalidRequest { field, message }) => {
                one(field.clone(), message.clone())
            }
            ApiError::Store(StoreError::UnrequestedPins { views, requested }) => views
                .iter()
                .map(|v| FieldError {
                    field: format!("table_versions.{v}"),
                    message: format!(
                        "{v:?} is not a view this request reads (it reads {})",
                        requested.join(", ")
                    ),
                })
                .collect(),
            ApiError::Store(StoreError::UnknownTables(names)) => names
                .iter()
                .map(|n| FieldError {
                    field: "feature_names".into(),
                    message: format!("unknown table {n:?}"),
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// The problem document for this error.
    pub fn problem(&self) -> Problem {
        let (status, code, title) = self.classify();
        if status.is_server_error() {
            tracing::error!(code, error = %self, "request failed");
        }
        Problem {
            problem_type: format!("/problems/{}", code.replace('_', "-")),
            title: title.to_owned(),
            status: status.as_u16(),
            detail: self.to_string(),
            code: code.to_owned(),
            errors: self.field_errors(),
        }
    }
}

/// `"a", "b"` for messages.
fn quoted<S: AsRef<str>>(names: &[S]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{:?}", n.as_ref())).collect();
    quoted.join(", ")
}

/// [`quoted`], or "no query parameters" for an empty list.
fn quoted_or_none(names: &[&str]) -> String {
    if names.is_empty() {
        "no query parameters".into()
    } else {
        quoted(names)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.classify().0
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.problem();
        let body = serde_json::to_vec(&problem).unwrap_or_default();
        let mut response = HttpResponse::build(self.status_code());
        response.insert_header((CONTENT_TYPE, PROBLEM_JSON));
        if let Some(challenge) = self.challenge() {
            response.insert_header((WWW_AUTHENTICATE, challenge));
        }
        if let Some(seconds) = self.retry_after() {
            response.insert_header((RETRY_AFTER, seconds.to_string()));
        }
        response.body(body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(error: StorageError) -> HttpResponse {
        ApiError::Store(StoreError::Storage(error)).error_response()
    }

    #[test]
    fn passing_503s_carry_retry_after_and_others_do_not() {
        let passing = [
            StorageError::Unavailable {
                reason: "connection refused".into(),
            },
            StorageError::CommitContended { name: "t".into() },
            StorageError::FileChanged {
                path: "features/g/t.parquet".into(),
            },
        ];
        for error in passing {
            let response = answer(error);
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            let header = response.headers().get(RETRY_AFTER);
            assert_eq!(header.and_then(|h| h.to_str().ok()), Some("1"));
        }
        let lasting = answer(StorageError::TableNotFound {
            name: "t".into(),
            hint: None,
        });
        assert!(lasting.headers().get(RETRY_AFTER).is_none());
    }
}
