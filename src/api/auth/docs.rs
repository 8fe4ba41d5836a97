//! The OpenAPI side of authentication: the `bearer` security scheme, and on every operation
//! the requirement, 401 and 403 responses and a sentence saying which scope it needs, all
//! derived from [`super::required_scope`] so the document says what the server enforces.

use actix_web::http::Method;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, Ref, RefOr, Response};

use super::required_scope;
use crate::api::error::PROBLEM_JSON;
use crate::auth::{Scope, TOKEN_PREFIX};

/// The name of the security scheme in the document.
pub const SCHEME: &str = "bearer";

/// Adds the scheme and annotates each operation. Runs before the problem examples are
/// attached, so the 401 and 403 responses get theirs.
pub struct SecurityDocs;

impl utoipa::Modify for SecurityDocs {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format(format!("{TOKEN_PREFIX}<64 hex digits>"))
            .description(Some(
                "Only when the server runs with `[auth] enabled = true` (off by default). \
                 Create a token with `featurestore token create --scope read|write`. Scope \
                 `read` allows every GET and the read-only POSTs (`/features/batch`, \
                 `/get-online-features`, `/get-historical-features`); `write` allows \
                 everything. `/health`, `/docs/`, `/openapi.json` and the console (`/`, `/ui/`) need no \
                 token.",
            ))
            .build();
        openapi
            .components
            .get_or_insert_with(|| ComponentsBuilder::new().build())
            .add_security_scheme(SCHEME, SecurityScheme::Http(scheme));
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                (Method::GET, &mut item.get),
                (Method::POST, &mut item.post),
                (Method::PUT, &mut item.put),
                (Method::DELETE, &mut item.delete),
                (Method::PATCH, &mut item.patch),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else {
                    continue;
                };
                if let Some(scope) = required_scope(&method, path) {
                    annotate(operation, scope);
                }
            }
        }
    }
}

fn annotate(operation: &mut Operation, scope: Scope) {
    // OpenAPI 3.1 lets an http scheme's requirement list role names: the scope needed.
    operation.security = Some(vec![SecurityRequirement::new(SCHEME, [scope.as_str()])]);
    let sentence = match scope {
        Scope::Read => "With `[auth]` enabled, needs a bearer token (scope `read` or `write`).",
        Scope::Write => "With `[auth]` enabled, needs a bearer token of scope `write`.",
    };
    operation.description = Some(match operation.description.take() {
        Some(text) if !text.is_empty() => format!("{text}\n\n{sentence}"),
        _ => sentence.to_owned(),
    });
    let responses = &mut operation.responses.responses;
    responses.insert(
        "401".into(),
        problem(
            "No bearer token, a malformed `Authorization` header, or an unknown token \
             (`unauthorized`); only with `[auth]` enabled",
            "error=\"invalid_token\"",
        ),
    );
    if scope == Scope::Write {
        responses.insert(
            "403".into(),
            problem(
                "The token's scope is `read`; this needs `write` (`forbidden`)",
                "error=\"insufficient_scope\", scope=\"write\"",
            ),
        );
    }
}

fn problem(description: &str, example_error: &str) -> RefOr<Response> {
    let challenge = HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some(format!(
            "The RFC 6750 challenge, e.g. `Bearer realm=\"featurestore\", {example_error}`"
        )))
        .build();
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .header("WWW-Authenticate", challenge)
            .content(
                PROBLEM_JSON,
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build(),
    )
}
