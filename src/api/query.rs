//! A query-string extractor that refuses parameters the route does not take.
//!
//! actix's `web::Query` ignores unknown names, so `GET /features/user/t?user_id=5` answered
//! the whole table as if it were filtered. [`StrictQuery`] names every unknown parameter in a
//! 400 `unknown_query_parameter` before deserializing the known ones as `web::Query` would.

use std::future::{Ready, ready};

use actix_web::{FromRequest, HttpRequest, dev::Payload, web};
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// The query parameters a route's parameter struct declares.
pub trait KnownParams {
    /// Every parameter name the route takes.
    const NAMES: &'static [&'static str];
}

/// `web::Query<T>`, but a parameter outside `T::NAMES` is a 400 naming it.
#[derive(Debug)]
pub struct StrictQuery<T>(pub T);

impl<T> StrictQuery<T> {
    /// The parameters.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: DeserializeOwned + KnownParams> FromRequest for StrictQuery<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        ready(parse(req.query_string()).map(StrictQuery))
    }
}

fn parse<T: DeserializeOwned + KnownParams>(query: &str) -> Result<T, ApiError> {
    let pairs = web::Query::<Vec<(String, String)>>::from_query(query)
        .map_err(super::query_error)?
        .into_inner();
    let mut unknown: Vec<String> = Vec::new();
    for (name, _) in pairs {
        if !T::NAMES.contains(&name.as_str()) && !unknown.contains(&name) {
            unknown.push(name);
        }
    }
    if !unknown.is_empty() {
        return Err(ApiError::UnknownQueryParameters {
            names: unknown,
            allowed: T::NAMES,
        });
    }
    web::Query::<T>::from_query(query)
        .map(web::Query::into_inner)
        .map_err(super::query_error)
}
