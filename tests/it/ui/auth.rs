//! With `[auth]` on, the console asks for a token once (the server's 401 opens the token
//! dialog), then loads with it; the token stays in the browser session's storage only.

use fantoccini::Locator;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::console_url;
use crate::common::browser::{Browser, Viewport};
use crate::common::{TestResult, TestServer, small_demo_dir};

/// The token the test types; the server knows only its sha256.
const TOKEN: &str = "fs_console_reader_token_for_tests";

/// `[auth]` on with [`TOKEN`] of scope read, as loaded from a configuration file.
fn auth_config() -> TestResult<featurestore::auth::AuthConfig> {
    let hash: String = Sha256::digest(TOKEN.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("featurestore.toml");
    std::fs::write(
        &path,
        format!(
            "[auth]\nenabled = true\n\n[[auth.tokens]]\nname = \"console\"\n\
             sha256 = \"{hash}\"\nscope = \"read\"\n"
        ),
    )?;
    Ok(featurestore::config::Config::load(Some(&path), std::iter::empty())?.auth)
}

/// Whether a console error is the browser reporting a 401 answer: expected until the token
/// is entered, as that answer is what opens the dialog.
fn is_unauthorized_load(error: &str) -> bool {
    error.contains("status of 401")
}

#[tokio::test]
async fn with_auth_on_the_console_asks_for_a_token_and_then_lists_the_tables() -> TestResult {
    let Some(browser) = Browser::start().await? else {
        return Ok(());
    };
    let auth = auth_config()?;
    let server = TestServer::start_on(small_demo_dir()?, |config| config.auth = auth)?;
    browser.resize(Viewport::Desktop).await?;
    browser
        .client()
        .goto(&console_url(&server, "tables"))
        .await?;

    browser.wait_for("dialog#token-dialog[open]").await?;
    browser.screenshot("auth-token-dialog-desktop").await?;
    let before = browser.check().await?;
    let unexpected: Vec<&String> = before
        .console_errors
        .iter()
        .filter(|e| !is_unauthorized_load(e))
        .collect();
    assert!(unexpected.is_empty(), "{before:?}");
    assert!(before.foreign_requests().is_empty(), "{before:?}");

    let input = browser
        .client()
        .find(Locator::Css("input#token-input"))
        .await?;
    input.send_keys(TOKEN).await?;
    browser
        .client()
        .find(Locator::Css("button#token-submit"))
        .await?
        .click()
        .await?;
    browser.wait_ready("tables").await?;
    // Requests that were waiting on the dialog may log their 401 only now.
    let after = browser.check().await?;
    let unexpected: Vec<&String> = after
        .console_errors
        .iter()
        .filter(|e| !is_unauthorized_load(e))
        .collect();
    assert!(unexpected.is_empty(), "{after:?}");
    assert!(after.foreign_requests().is_empty(), "{after:?}");
    let listed = browser
        .eval("return [...document.querySelectorAll('tr[data-table]')].map((tr) => tr.dataset.table);")
        .await?;
    assert_eq!(
        listed,
        json!([
            "content/movie_metadata",
            "interaction/user_movie_interactions",
            "user/user_profile"
        ])
    );
    let dialog_open = browser
        .eval("return document.querySelector('dialog#token-dialog').open;")
        .await?;
    assert_eq!(dialog_open, Value::Bool(false));
    browser
        .screenshot("auth-tables-after-token-desktop")
        .await?;

    // The token is kept for this browser session only: in sessionStorage, not in
    // localStorage or a cookie.
    let kept = browser
        .eval(
            "return {session: Object.keys(sessionStorage).map((k) => sessionStorage.getItem(k)),
                     local: localStorage.length, cookie: document.cookie};",
        )
        .await?;
    assert_eq!(
        kept,
        json!({"session": [TOKEN], "local": 0, "cookie": ""}),
        "{kept}"
    );

    // Another page of the same session needs no second prompt.
    browser
        .open(&console_url(&server, "registry"), "registry")
        .await?;
    browser
        .check()
        .await?
        .assert_clean("a page opened with the token")?;
    browser.close().await
}
