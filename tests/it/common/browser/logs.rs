//! What the browser logged: console errors and every network request, read from chromedriver.
//!
//! chromedriver keeps two logs per session when asked by `goog:loggingPrefs`: "browser" (the
//! console, uncaught exceptions, failed loads) and "performance" (the DevTools events, among
//! them `Network.requestWillBeSent` for every request the page makes, whatever made it: a
//! fetch, an image, a stylesheet, the favicon). W3C WebDriver has no command for either, so
//! they are read with chromedriver's own `POST /session/{id}/se/log` through fantoccini's raw
//! command support. Each read returns what was logged since the previous read of that log.

use fantoccini::Client;
use fantoccini::wd::WebDriverCompatibleCommand;
use serde_json::{Value, json};

use crate::common::TestResult;

/// chromedriver's "get log" command for one log type.
#[derive(Debug)]
struct GetLog(&'static str);

impl WebDriverCompatibleCommand for GetLog {
    fn endpoint(
        &self,
        base_url: &url::Url,
        session_id: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        // The log belongs to a session; a command issued without one cannot name any.
        let session = session_id.ok_or(url::ParseError::EmptyHost)?;
        base_url.join(&format!("session/{session}/se/log"))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": self.0 }).to_string()),
        )
    }
}

/// The entries logged to `kind` since the last read of it.
async fn read(client: &Client, kind: &'static str) -> TestResult<Vec<Value>> {
    match client.issue_cmd(GetLog(kind)).await? {
        Value::Array(entries) => Ok(entries),
        other => Err(format!("chromedriver's {kind} log is not a list: {other}").into()),
    }
}

/// Console errors (level SEVERE: `console.error`, uncaught exceptions, failed loads) logged
/// since the last read, each as "source: message".
pub async fn console_errors(client: &Client) -> TestResult<Vec<String>> {
    Ok(read(client, "browser")
        .await?
        .iter()
        .filter(|entry| entry["level"] == "SEVERE")
        .map(|entry| {
            format!(
                "{}: {}",
                entry["source"].as_str().unwrap_or("?"),
                entry["message"].as_str().unwrap_or_default()
            )
        })
        .collect())
}

/// The URL of every request the browser sent since the last read, in order.
pub async fn request_urls(client: &Client) -> TestResult<Vec<String>> {
    let mut urls = Vec::new();
    for entry in read(client, "performance").await? {
        // Each entry's `message` is a JSON text: {"message": {"method", "params"}, "webview"}.
        let Some(text) = entry["message"].as_str() else {
            continue;
        };
        let event: Value = serde_json::from_str(text)?;
        if event["message"]["method"] == "Network.requestWillBeSent"
            && let Some(url) = event["message"]["params"]["request"]["url"].as_str()
        {
            urls.push(url.to_owned());
        }
    }
    Ok(urls)
}

/// Whether a request to `url` stays on this machine: http(s) or ws(s) to a loopback host, or
/// a `data:`/`blob:` URL, which never reach a network.
pub fn stays_on_loopback(url: &str) -> bool {
    let Ok(parsed) = url::Url::parse(url) else {
        return false;
    };
    match parsed.scheme() {
        "data" | "blob" => true,
        "http" | "https" | "ws" | "wss" => match parsed.host() {
            Some(url::Host::Domain(name)) => name == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        },
        _ => false,
    }
}

#[test]
fn only_loopback_hosts_and_local_schemes_count_as_staying_on_the_machine() {
    for url in [
        "http://127.0.0.1:8001/ui/",
        "http://localhost:8001/features",
        "http://[::1]:8001/x",
        "ws://127.0.0.2/live",
        "data:image/png;base64,AAAA",
        "blob:http://127.0.0.1:8001/1b2c",
    ] {
        assert!(stays_on_loopback(url), "{url}");
    }
    for url in [
        "https://cdn.example.com/chart.js",
        "http://192.0.2.1/x",
        "http://localhost.example.com/x",
        "https://fonts.googleapis.com/css",
        "chrome://new-tab-page/",
        "not a url",
    ] {
        assert!(!stays_on_loopback(url), "{url}");
    }
}
