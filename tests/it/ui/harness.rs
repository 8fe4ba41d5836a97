//! The browser harness catches what the console tests rely on it to catch: a console error, a
//! request leaving loopback, a page that never becomes ready, a page showing an error. Without
//! these checks a broken console could pass every test in `ui/`.
//!
//! The pages come from a tiny HTTP handler here, not from the console, so these tests hold
//! whatever the console does.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::Duration;

use crate::common::TestResult;
use crate::common::browser::{Browser, Viewport};

/// A page the console's contract would call ready.
const QUIET: &str = r#"<!doctype html><title>quiet</title>
<main data-page="probe" data-ready="true"><p>nothing to see</p></main>"#;

/// A ready page that logs a console error and loads an image from a CDN.
const NOISY: &str = r#"<!doctype html><title>noisy</title>
<main data-page="probe" data-ready="true"><img src="https://cdn.example.com/chart.png"></main>
<script>console.error("deliberate console error");</script>"#;

/// A page that never marks itself ready.
const STUCK: &str = r#"<!doctype html><title>stuck</title><main data-page="probe"></main>"#;

/// A ready page that shows an API error as the console would.
const FAILED: &str = r#"<!doctype html><title>failed</title>
<main data-page="probe" data-ready="true">
<p data-error="table_not_found">table_not_found: no table user/nope</p></main>"#;

/// Serves `pages` (path → HTML) on a loopback port from a thread; every other path is a 204
/// (so the browser's favicon request logs no error). Returns the base URL.
fn serve(pages: &'static [(&'static str, &'static str)]) -> TestResult<String> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);
    // The thread ends with the test binary; it only ever answers loopback requests.
    std::thread::spawn(move || {
        for mut stream in listener.incoming().map_while(Result::ok) {
            let mut request_line = String::new();
            let mut reader = BufReader::new(&stream);
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            // The rest of the head, so the browser sees its request read.
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let path = request_line.split(' ').nth(1).unwrap_or("/");
            let response = match pages.iter().find(|(p, _)| *p == path) {
                Some((_, html)) => format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{html}",
                    html.len()
                ),
                None => "HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n".to_owned(),
            };
            let _ = stream.write_all(response.as_bytes());
        }
    });
    Ok(base)
}

#[tokio::test]
async fn the_harness_reports_console_errors_foreign_requests_stuck_and_failed_pages() -> TestResult
{
    let Some(browser) = Browser::start().await? else {
        return Ok(());
    };
    let base = serve(&[
        ("/quiet", QUIET),
        ("/noisy", NOISY),
        ("/stuck", STUCK),
        ("/failed", FAILED),
    ])?;

    // A quiet page is clean: the browser itself adds no error and no request of its own.
    browser.open(&format!("{base}/quiet"), "probe").await?;
    let quiet = browser.check().await?;
    quiet.assert_clean("the quiet page")?;
    assert!(
        quiet.requests.contains(&format!("{base}/quiet")),
        "the page's own request is seen: {quiet:?}"
    );

    // The noisy page's console error and its CDN request are both reported.
    browser.open(&format!("{base}/noisy"), "probe").await?;
    let noisy = browser.check().await?;
    assert!(
        noisy
            .console_errors
            .iter()
            .any(|e| e.contains("deliberate console error")),
        "{noisy:?}"
    );
    assert_eq!(
        noisy.foreign_requests(),
        ["https://cdn.example.com/chart.png"],
        "{noisy:?}"
    );
    let verdict = noisy.assert_clean("the noisy page");
    assert!(
        verdict.as_ref().is_err_and(|e| {
            let e = e.to_string();
            e.contains("deliberate console error") && e.contains("cdn.example.com")
        }),
        "{verdict:?}"
    );

    // A page that never becomes ready fails the wait, saying what it waited for and what the
    // page showed.
    browser.client().goto(&format!("{base}/stuck")).await?;
    let waited = browser
        .wait_for_within("main[data-ready=\"true\"]", Duration::from_secs(1))
        .await;
    let Err(stuck) = waited else {
        return Err("the stuck page was taken for ready".into());
    };
    let stuck = stuck.to_string();
    assert!(
        stuck.contains("main[data-ready=\"true\"] did not appear") && stuck.contains("/stuck"),
        "{stuck}"
    );

    // A page showing an API error fails `open`, quoting the error.
    let failed = browser.open(&format!("{base}/failed"), "probe").await;
    assert!(
        failed
            .as_ref()
            .is_err_and(|e| e.to_string().contains("no table user/nope")),
        "{failed:?}"
    );
    browser
        .open_allowing_error(&format!("{base}/failed"), "probe")
        .await?;

    // Both sizes are exactly what the page sees.
    for viewport in Viewport::ALL {
        browser.resize(viewport).await?;
    }
    browser.close().await
}
