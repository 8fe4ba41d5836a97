//! Running the same HTTP tests on the s3 kind: [`on_s3`] runs a test with every
//! [`super::TestServer`] it starts (and every `featurestore` command it runs) on one fresh
//! bucket of the test S3 server instead of the local data root, and [`on_s3_too!`] declares
//! such twins of existing tests in a `on_s3` submodule.
//!
//! The switch is a thread-local: `#[actix_web::test]` runs a test's body on the thread that
//! calls it, so the twin sets it, calls the original test function and clears it. Tests that
//! look at files under the data root cannot have a twin: on the s3 kind, the tables are not
//! there.

use std::cell::RefCell;
use std::sync::Arc;

use super::TestResult;
use super::s3::{S3Bucket, s3_bucket};

thread_local! {
    static BUCKET: RefCell<Option<Arc<S3Bucket>>> = const { RefCell::new(None) };
}

/// Runs `test` on the s3 kind (a fresh bucket for the whole test, so a restarted server
/// finds its tables). Where no S3 server can be had, `s3_bucket` printed `skipped:` (or, in
/// CI, panicked) and the test passes without running.
pub fn on_s3(test: impl FnOnce() -> TestResult) -> TestResult {
    let Some(bucket) = s3_bucket() else {
        return Ok(());
    };
    BUCKET.with(|b| *b.borrow_mut() = Some(Arc::new(bucket)));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(test));
    BUCKET.with(|b| *b.borrow_mut() = None);
    match outcome {
        Ok(result) => result,
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// The bucket the running test is on, when it runs on the s3 kind.
pub fn s3_bucket_of_this_test() -> Option<Arc<S3Bucket>> {
    BUCKET.with(|b| b.borrow().clone())
}

/// The environment a `featurestore` command needs to work on this test's bucket (none on
/// the local kind).
pub fn s3_env_of_this_test() -> Vec<(String, String)> {
    let Some(bucket) = s3_bucket_of_this_test() else {
        return Vec::new();
    };
    let mut env: Vec<(String, String)> = bucket
        .env()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    env.push(("FEATURESTORE__STORAGE__BACKEND".into(), "s3".into()));
    env.push((
        "FEATURESTORE__STORAGE__S3__BUCKET".into(),
        bucket.name().to_owned(),
    ));
    if let Some(endpoint) = &bucket.config.endpoint {
        env.push((
            "FEATURESTORE__STORAGE__S3__ENDPOINT".into(),
            endpoint.clone(),
        ));
    }
    env.push((
        "FEATURESTORE__STORAGE__S3__ALLOW_HTTP".into(),
        "true".into(),
    ));
    env
}

/// Declares, in a submodule `on_s3`, a twin of each named test of the enclosing module
/// that runs it on the s3 kind.
#[macro_export]
macro_rules! on_s3_too {
    ($($test:ident),* $(,)?) => {
        mod on_s3 {
            $(
                #[test]
                fn $test() -> $crate::common::TestResult {
                    $crate::common::kind::on_s3(super::$test)
                }
            )*
        }
    };
}
