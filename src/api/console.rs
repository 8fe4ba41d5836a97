//! The web console's routes: `/ui/` and its assets, `/ui` (a redirect), and `/` (a page
//! linking the console and the API documentation).
//!
//! Assets come from [`crate::console`], compiled in. Each answer carries a strong `ETag` and
//! `Cache-Control: no-cache`: the file names are not fingerprinted, so browsers must ask
//! again, but a revalidation costs a 304 without a body. No route here is in the OpenAPI
//! document, as Swagger UI's `/docs/` is not: they serve pages to browsers, not the API. With
//! `[auth]` on they need no token (see `auth::required_scope`); the data the console shows
//! comes from API routes that do.

use actix_web::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, ETAG, HeaderValue, IF_NONE_MATCH,
    X_CONTENT_TYPE_OPTIONS,
};
use actix_web::{HttpRequest, HttpResponse, web};

use super::ApiError;
use crate::console::{self, Asset};

/// Where the console lives.
pub const CONSOLE_PATH: &str = "/ui/";

/// The console may load only its own files and call only this server: no CDN, font or
/// analytics request can leave the machine, even by mistake in a later change.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                      img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
                      form-action 'none'; frame-ancestors 'none'";

/// Registers `/`, `/ui`, `/ui/` and `/ui/{asset}` (GET and HEAD).
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::redirect("/ui", CONSOLE_PATH))
        .service(
            super::resource("/")
                .route(web::get().to(root))
                .route(web::head().to(root)),
        )
        .service(
            super::resource(CONSOLE_PATH)
                .route(web::get().to(index))
                .route(web::head().to(index)),
        )
        .service(
            super::resource("/ui/{asset}")
                .route(web::get().to(asset))
                .route(web::head().to(asset)),
        );
}

/// `GET /`: links to the console and to Swagger UI.
async fn root(req: HttpRequest) -> HttpResponse {
    serve(&req, &console::ROOT_PAGE)
}

/// `GET /ui/`: the console's single page.
async fn index(req: HttpRequest) -> Result<HttpResponse, ApiError> {
    let page = console::asset("index.html").ok_or_else(|| not_found(&req))?;
    Ok(serve(&req, page))
}

/// `GET /ui/{asset}`: one of the console's files; any other name is a 404 problem.
async fn asset(req: HttpRequest, name: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let found = console::asset(&name).ok_or_else(|| not_found(&req))?;
    Ok(serve(&req, found))
}

fn not_found(req: &HttpRequest) -> ApiError {
    ApiError::RouteNotFound {
        method: req.method().to_string(),
        path: req.path().to_owned(),
    }
}

/// The asset, or a 304 when the browser already holds these bytes.
fn serve(req: &HttpRequest, asset: &Asset) -> HttpResponse {
    let tag = console::etag(asset);
    let unchanged = holds(req, tag);
    let mut response = if unchanged {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((ETAG, tag))
        .insert_header((CACHE_CONTROL, "no-cache"))
        .insert_header((X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")))
        .insert_header((CONTENT_SECURITY_POLICY, POLICY));
    if unchanged {
        return response.finish();
    }
    response.content_type(asset.content_type).body(asset.body)
}

/// Whether `If-None-Match` names `tag` (weak or strong, as RFC 9110 compares for GET) or is
/// `*`.
fn holds(req: &HttpRequest, tag: &str) -> bool {
    req.headers()
        .get_all(IF_NONE_MATCH)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|candidate| candidate == "*" || candidate.trim_start_matches("W/") == tag)
}
