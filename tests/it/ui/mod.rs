//! The console at `/ui/` in a real browser (headless Chromium over WebDriver; see
//! `common/browser`): every page loads quietly and offline at a laptop's and a phone's size,
//! and what it shows is what the API answers.
//!
//! Each file starts one browser and one server over the small demo (30 users, 12 movies, 300
//! interactions, written by the `demo` command), and checks all its pages with them: starting
//! Chromium costs about a second, the demo less. Every page visited leaves a screenshot under
//! `target/ui-screenshots/` (`<page>-desktop.png`, `<page>-phone.png`) for anyone to look at.

mod auth;
mod harness;
mod lookup;
mod pages;
mod table;
mod tables;

use serde_json::Value;

use crate::common::browser::{Browser, Viewport};
use crate::common::{TestResult, TestServer, small_demo_server};

/// A browser and a server over the small demo, or `None` when the browser tests are skipped
/// here (see [`Browser::start`]).
async fn demo_console() -> TestResult<Option<(TestServer, Browser)>> {
    let Some(browser) = Browser::start().await? else {
        return Ok(None);
    };
    Ok(Some((small_demo_server()?, browser)))
}

/// The console's URL of `route` (`tables`, `tables/user/user_profile`, `registry`, ...).
fn console_url(server: &TestServer, route: &str) -> String {
    server.url(&format!("/ui/#/{route}"))
}

/// Opens `route` at each size as a fresh document, checks that the page `page` became ready
/// with no console error and no request leaving loopback, and saves `<shot>-desktop.png` and
/// `<shot>-phone.png`. Leaves the browser at the phone's size.
async fn visit_at_both_sizes(
    browser: &Browser,
    server: &TestServer,
    route: &str,
    page: &str,
    shot: &str,
) -> TestResult {
    let url = console_url(server, route);
    for viewport in Viewport::ALL {
        browser.resize(viewport).await?;
        browser.open(&url, page).await?;
        browser
            .check()
            .await?
            .assert_clean(&format!("{url} at {viewport:?}"))?;
        browser
            .screenshot(&format!("{shot}-{}", viewport.name()))
            .await?;
    }
    Ok(())
}

/// Whether the `data-value` text of an element is the number the API answered: both are
/// parsed, so `30` and `30.0` (JavaScript and Rust print whole floats differently) agree,
/// while any other difference, even in the last digit, does not.
fn same_number(shown: &str, api: &Value) -> bool {
    match (shown.parse::<f64>(), api.as_f64()) {
        (Ok(shown), Some(api)) => shown == api,
        _ => false,
    }
}

/// Whether a `data-value` holding JSON (a lookup's value) is the value the API answered, with
/// numbers compared as in [`same_number`].
fn same_json(shown: &str, api: &Value) -> bool {
    match serde_json::from_str::<Value>(shown) {
        Ok(Value::Number(n)) => api.as_f64().is_some_and(|a| n.as_f64() == Some(a)),
        Ok(other) => &other == api,
        Err(_) => false,
    }
}
