//! The HTTP floor: a route that answers a fixed JSON body, for the load harness only.
//!
//! `benches/load/run.sh` needs to know how far each workload is from what actix-web, the
//! middleware and loopback TCP cost on their own. It starts the server with the hidden flag
//! `serve --bench-floor-bytes N` (N = the size of the online answer it measures), and this
//! route then answers every method on `/_bench/floor` with N bytes of JSON built once at
//! start-up. The request body is read and dropped, so a POST with the online request's body
//! costs the same bytes in and out as the real lookup, without parsing, planning or the
//! gather. Without the flag the route does not exist, and it is not in the OpenAPI document:
//! no client should depend on it.

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, web};

/// The path of the floor route.
pub const FLOOR_PATH: &str = "/_bench/floor";

/// The smallest body [`floor_body`] can make: `{"floor":""}`.
const MIN_BYTES: usize = 12;

/// A JSON object of exactly `bytes` bytes (at least 12): `{"floor":"xxx…"}`.
pub fn floor_body(bytes: usize) -> web::Bytes {
    let padding = bytes.max(MIN_BYTES) - MIN_BYTES;
    let mut body = String::with_capacity(bytes.max(MIN_BYTES));
    body.push_str("{\"floor\":\"");
    body.extend(std::iter::repeat_n('x', padding));
    body.push_str("\"}");
    web::Bytes::from(body)
}

/// Answers the prepared body; the request body has been read by the extractor.
pub(super) async fn floor(body: web::Data<FloorBody>, _request: web::Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body.0.clone())
}

/// The prepared answer of the floor route (cheap to clone: reference-counted bytes).
#[derive(Debug, Clone)]
pub struct FloorBody(pub web::Bytes);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_exact_size_and_parse() {
        for bytes in [0, 12, 13, 373, 4096] {
            let body = floor_body(bytes);
            assert_eq!(body.len(), bytes.max(12));
            let value: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
            assert!(value["floor"].is_string());
        }
    }
}
