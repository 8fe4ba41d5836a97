//! A JSON body extractor for the routes whose bodies can be large (saves, pushes, training
//! data requests): parsing happens off the event loop once a body is big.
//!
//! actix-web's `web::Json` deserializes on the worker thread that received the request, and
//! each worker serves many connections: while it turned a 300 000-record save into records
//! (seconds in a debug build), every other request on that worker waited, reads of other
//! tables included. [`BlockingJson`] reads the body on the event loop (that only waits on the
//! socket), then deserializes on the blocking pool when the body is over
//! [`INLINE_PARSE_BYTES`]; small bodies are still parsed in place, where a thread hop would
//! cost more than the parse. Errors are the same problems as `web::Json`'s: 415 for a body
//! that is not JSON by its content type, 413 over `api.max_body_mb`, 400 for malformed JSON and
//! 422 for JSON of the wrong shape.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::CONTENT_TYPE;
use actix_web::{FromRequest, HttpRequest, mime, web};
use serde::de::DeserializeOwned;

use super::AppState;
use super::error::ApiError;
use crate::store::StoreError;

/// Bodies up to this size are parsed on the event loop.
pub const INLINE_PARSE_BYTES: usize = 64 * 1024;

/// A JSON request body parsed off the event loop when large (see the module doc).
#[derive(Debug)]
pub struct BlockingJson<T>(pub T);

impl<T> BlockingJson<T> {
    /// The parsed body.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + Send + 'static> FromRequest for BlockingJson<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json = is_json(req);
        let limit = req
            .app_data::<web::Data<AppState>>()
            .map_or(usize::MAX, |state| state.config.max_body_bytes());
        let payload = web::Payload::from_request(req, payload);
        Box::pin(async move {
            if !is_json {
                return Err(ApiError::UnsupportedMediaType(
                    "(missing or not JSON)".into(),
                ));
            }
            let body = payload
                .await
                .map_err(|e| ApiError::MalformedJson(e.to_string()))?
                .to_bytes_limited(limit)
                .await
                .map_err(|_| ApiError::PayloadTooLarge { limit_bytes: limit })?
                .map_err(|e| ApiError::MalformedJson(e.to_string()))?;
            parse_off_loop(body, |bytes| {
                serde_json::from_slice(bytes).map_err(super::deserialize_error)
            })
            .await
            .map(BlockingJson)
        })
    }
}

/// Runs `parse` on `body` in place when it is small, on the blocking pool when it is over
/// [`INLINE_PARSE_BYTES`].
pub(super) async fn parse_off_loop<T: Send + 'static>(
    body: web::Bytes,
    parse: impl FnOnce(&[u8]) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    if body.len() <= INLINE_PARSE_BYTES {
        return parse(&body);
    }
    web::block(move || parse(&body))
        .await
        .map_err(|e| ApiError::Store(StoreError::Task(e.to_string())))?
}

/// Whether the content type is JSON (`application/json`, or any `+json` type), the rule
/// `web::Json` applies.
fn is_json(req: &HttpRequest) -> bool {
    let Some(value) = req.headers().get(CONTENT_TYPE) else {
        return false;
    };
    let Ok(mime) = value.to_str().unwrap_or_default().parse::<mime::Mime>() else {
        return false;
    };
    mime.subtype() == mime::JSON || mime.suffix() == Some(mime::JSON)
}
