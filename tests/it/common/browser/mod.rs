//! A real browser for the console's tests: Debian's Chromium, headless, driven over WebDriver.
//!
//! [`Browser::start`] starts chromedriver (see [`driver`]) and opens a session with
//! `fantoccini`. Without `/usr/bin/chromedriver` and `/usr/bin/chromium` (installed by
//! `.ci/run`) it prints one `skipped: ...` line and gives `None`, so `cargo test` stays green
//! on a machine without them — except under CI (`CI` set), where a missing browser fails the
//! test: CI must run these tests.
//!
//! Every page is opened as a fresh document and waited for until the console marks it ready
//! (`main[data-ready="true"]`); [`Browser::check`] then reads what the page did meanwhile —
//! console errors and the URL of every request (see [`logs`]) — so a test can assert that the
//! console works offline and quietly. Host names other than localhost do not resolve in these
//! sessions (`--host-resolver-rules`): a page that reaches for the network fails to load it
//! here, and its request is still reported.

pub mod driver;
pub mod logs;

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::common::TestResult;
use driver::Driver;

/// How long a page may take to become ready: a debug-build server and Chromium sharing two
/// loaded cores, not a performance bound.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the page may take to see a new window size, on the same loaded cores.
const RESIZE_TIMEOUT: Duration = Duration::from_secs(10);

/// The window sizes every page is checked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewport {
    /// 1280×800: a laptop.
    Desktop,
    /// 390×844: a phone held upright.
    Phone,
}

impl Viewport {
    /// Both sizes, desktop first.
    pub const ALL: [Viewport; 2] = [Viewport::Desktop, Viewport::Phone];

    /// Width and height in CSS pixels.
    pub fn size(self) -> (u32, u32) {
        match self {
            Viewport::Desktop => (1280, 800),
            Viewport::Phone => (390, 844),
        }
    }

    /// The suffix of this size's screenshots.
    pub fn name(self) -> &'static str {
        match self {
            Viewport::Desktop => "desktop",
            Viewport::Phone => "phone",
        }
    }
}

/// What a page did since the previous check.
#[derive(Debug, Default)]
pub struct PageReport {
    /// Console errors, each "source: message".
    pub console_errors: Vec<String>,
    /// Every request URL, in order.
    pub requests: Vec<String>,
}

impl PageReport {
    /// The requests that would have left this machine.
    pub fn foreign_requests(&self) -> Vec<&str> {
        self.requests
            .iter()
            .map(String::as_str)
            .filter(|url| !logs::stays_on_loopback(url))
            .collect()
    }

    /// Fails, naming what was wrong, unless the page logged no console error and every
    /// request stayed on loopback.
    pub fn assert_clean(&self, what: &str) -> TestResult {
        let foreign = self.foreign_requests();
        if self.console_errors.is_empty() && foreign.is_empty() {
            return Ok(());
        }
        Err(format!(
            "{what}: console errors {:#?}; requests leaving loopback {foreign:#?}",
            self.console_errors
        )
        .into())
    }
}

/// Timings of the current document, in milliseconds from navigation start.
#[derive(Debug, Clone, Copy)]
pub struct PaintTimings {
    /// The first contentful paint, when the browser recorded one.
    pub first_contentful_paint_ms: Option<f64>,
    /// The end of `DOMContentLoaded`.
    pub dom_content_loaded_ms: Option<f64>,
    /// The end of the `load` event.
    pub load_ms: Option<f64>,
    /// When the last answer to a `fetch` (the console's API calls) had arrived: the page's
    /// data is in from then on.
    pub last_fetch_ms: Option<f64>,
}

/// A headless Chromium session; its browser and driver end on drop, also on a panic.
pub struct Browser {
    client: Client,
    /// How much larger the window is than its viewport (headless Chromium keeps a frame too),
    /// measured once at the start, when nothing is resizing.
    frame: (u32, u32),
    // Declared after the client and before the profile: fields drop in order, so the driver's
    // process group is killed before the profile folder it writes to is removed.
    driver: Driver,
    profile: tempfile::TempDir,
}

impl Browser {
    /// A fresh session with a fresh profile, or `None` after printing why when Chromium or its
    /// driver is not installed and `CI` is not set. Under CI their absence is an error.
    pub async fn start() -> TestResult<Option<Self>> {
        let missing = driver::missing_binaries();
        if !missing.is_empty() {
            let why = format!(
                "{} not installed (Debian's chromium and chromium-driver; .ci/run installs them)",
                missing.join(" and ")
            );
            if std::env::var_os("CI").is_some() {
                return Err(format!("CI is set, so the browser tests must run, but {why}").into());
            }
            // Straight to the process's stderr: libtest captures `eprintln!`, and this line
            // must be seen in a passing run.
            let _ = writeln!(std::io::stderr(), "skipped: browser test: {why}");
            return Ok(None);
        }
        let profile = tempfile::Builder::new()
            .prefix("featurestore-chromium-")
            .tempdir()?;
        let driver = Driver::start(profile.path())?;
        let client = match ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities(&profile.path().join("profile")))
            .connect(&driver.url)
            .await
        {
            Ok(client) => client,
            Err(e) => {
                return Err(format!(
                    "no Chromium session: {e}; chromedriver's log:\n{}",
                    driver.log_tail()
                )
                .into());
            }
        };
        let mut browser = Self {
            client,
            frame: (0, 0),
            driver,
            profile,
        };
        // The session opens on the browser's new-tab page, whose chrome:// requests go on
        // after the session is handed over: leave it, then forget what it did, which is not
        // the console's doing.
        browser.client.goto("about:blank").await?;
        browser.check().await?;
        let (outer_width, outer_height) = browser.client.get_window_size().await?;
        let (inner_width, inner_height) = browser.viewport().await?;
        browser.frame = (
            u32::try_from(outer_width)?.saturating_sub(inner_width),
            u32::try_from(outer_height)?.saturating_sub(inner_height),
        );
        Ok(Some(browser))
    }

    /// The WebDriver client, for finding elements and typing.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` as a fresh document (a change of the hash alone would not reload the page)
    /// and waits until the console has rendered the page `page` and marked it ready; fails if
    /// the page shows an error (`[data-error]`).
    pub async fn open(&self, url: &str, page: &str) -> TestResult {
        self.open_allowing_error(url, page).await?;
        let errors = self.client.find_all(Locator::Css("[data-error]")).await?;
        if let Some(shown) = errors.first() {
            return Err(format!(
                "{url} shows an error: {:?} (data-error={:?})",
                shown.text().await?,
                shown.attr("data-error").await?
            )
            .into());
        }
        Ok(())
    }

    /// [`Self::open`], for a test that expects the page to show an error.
    pub async fn open_allowing_error(&self, url: &str, page: &str) -> TestResult {
        self.client.goto("about:blank").await?;
        self.client.goto(url).await?;
        self.wait_ready(page).await
    }

    /// Waits until `main[data-page=page]` is marked ready, failing with what the page shows
    /// (and a screenshot `not-ready-<page>.png`) when it is not within a generous timeout.
    pub async fn wait_ready(&self, page: &str) -> TestResult {
        let selector = format!("main[data-page=\"{page}\"][data-ready=\"true\"]");
        match self.wait_for(&selector).await {
            Ok(_) => Ok(()),
            Err(e) => Err(format!("the {page} page was not ready: {e}").into()),
        }
    }

    /// Waits for an element matching the CSS `selector`; on timeout fails with the page's
    /// state: its URL, `main`'s attributes, any error shown, the console errors, and a
    /// screenshot.
    pub async fn wait_for(&self, selector: &str) -> TestResult<fantoccini::elements::Element> {
        self.wait_for_within(selector, READY_TIMEOUT).await
    }

    /// [`Self::wait_for`] with another timeout.
    pub async fn wait_for_within(
        &self,
        selector: &str,
        timeout: Duration,
    ) -> TestResult<fantoccini::elements::Element> {
        match self
            .client
            .wait()
            .at_most(timeout)
            .for_element(Locator::Css(selector))
            .await
        {
            Ok(element) => Ok(element),
            Err(e) => {
                let state = self.describe().await;
                let shot = self.screenshot(&self.failure_name().await).await;
                Err(format!(
                    "{selector} did not appear within {timeout:?} ({e}); {state}; \
                     screenshot: {shot:?}"
                )
                .into())
            }
        }
    }

    /// The name of a failure screenshot of the current page: `not-ready-` and its path and
    /// hash, e.g. `not-ready-ui-tables` for `/ui/#/tables`.
    async fn failure_name(&self) -> String {
        let place = match self.client.current_url().await {
            Ok(url) => format!("{}{}", url.path(), url.fragment().unwrap_or_default()),
            Err(_) => String::new(),
        };
        let words: Vec<&str> = place
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|w| !w.is_empty())
            .collect();
        format!("not-ready-{}", words.join("-"))
    }

    /// The page's state in one line, for failure messages.
    async fn describe(&self) -> String {
        let state = self
            .client
            .execute(
                "const m = document.querySelector('main');
                 const e = document.querySelector('[data-error]');
                 return {url: location.href,
                         main: m ? {page: m.dataset.page, ready: m.dataset.ready} : null,
                         error: e ? e.textContent : null};",
                vec![],
            )
            .await
            .unwrap_or_else(|e| json!(format!("(page state unreadable: {e})")));
        let errors = logs::console_errors(&self.client)
            .await
            .unwrap_or_else(|e| vec![format!("(console log unreadable: {e})")]);
        format!("page {state}; console errors {errors:?}")
    }

    /// What the page did since the previous check: console errors and requests.
    pub async fn check(&self) -> TestResult<PageReport> {
        Ok(PageReport {
            console_errors: logs::console_errors(&self.client).await?,
            requests: logs::request_urls(&self.client).await?,
        })
    }

    /// Sets the viewport (what the page sees as `innerWidth`×`innerHeight`) to `viewport`'s
    /// size and waits until the page sees exactly that: the window, larger than its viewport
    /// by the browser's frame, is resized at once, its page a moment later.
    pub async fn resize(&self, viewport: Viewport) -> TestResult {
        let (width, height) = viewport.size();
        self.client
            .set_window_size(width + self.frame.0, height + self.frame.1)
            .await?;
        let deadline = Instant::now() + RESIZE_TIMEOUT;
        loop {
            let seen = self.viewport().await?;
            if seen == (width, height) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "asked for a {width}×{height} viewport, the page still sees {}×{} (CSS \
                     pixels) after {RESIZE_TIMEOUT:?}",
                    seen.0, seen.1
                )
                .into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The page's viewport, in CSS pixels.
    async fn viewport(&self) -> TestResult<(u32, u32)> {
        let inner = self
            .client
            .execute("return [window.innerWidth, window.innerHeight];", vec![])
            .await?;
        match (inner[0].as_u64(), inner[1].as_u64()) {
            (Some(w), Some(h)) => Ok((u32::try_from(w)?, u32::try_from(h)?)),
            _ => Err(format!("the page's viewport is unreadable: {inner}").into()),
        }
    }

    /// Saves a screenshot of the viewport as `target/ui-screenshots/<name>.png`; returns its
    /// path.
    pub async fn screenshot(&self, name: &str) -> TestResult<PathBuf> {
        let png = self.client.screenshot().await?;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir)?;
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// The current document's paint and load timings.
    pub async fn paint_timings(&self) -> TestResult<PaintTimings> {
        let timings = self
            .client
            .execute(
                "const fcp = performance.getEntriesByName('first-contentful-paint')[0];
                 const nav = performance.getEntriesByType('navigation')[0];
                 const fetches = performance.getEntriesByType('resource')
                     .filter((r) => r.initiatorType === 'fetch');
                 return {fcp: fcp ? fcp.startTime : null,
                         dcl: nav ? nav.domContentLoadedEventEnd : null,
                         load: nav ? nav.loadEventEnd : null,
                         fetched: fetches.length
                             ? Math.max(...fetches.map((r) => r.responseEnd)) : null};",
                vec![],
            )
            .await?;
        Ok(PaintTimings {
            first_contentful_paint_ms: timings["fcp"].as_f64(),
            dom_content_loaded_ms: timings["dcl"].as_f64(),
            load_ms: timings["load"].as_f64(),
            last_fetch_ms: timings["fetched"].as_f64(),
        })
    }

    /// Runs `script` in the page and returns what it returns.
    pub async fn eval(&self, script: &str) -> TestResult<Value> {
        Ok(self.client.execute(script, vec![]).await?)
    }

    /// Ends the session (and its browser), then the driver.
    pub async fn close(self) -> TestResult {
        let Self {
            client,
            driver,
            profile,
            ..
        } = self;
        let closed = client.close().await;
        drop(driver);
        drop(profile);
        Ok(closed?)
    }
}

/// `target/ui-screenshots/` of this repository, where every screenshot goes.
pub fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots")
}

/// The session's capabilities: headless Chromium with nothing that talks to the network on
/// its own, a fresh profile in `profile`, and both logs [`logs`] reads.
fn capabilities(profile: &std::path::Path) -> serde_json::Map<String, Value> {
    let (width, height) = Viewport::Desktop.size();
    let args = [
        "--headless=new".to_owned(),
        // Root in a container: Chromium's sandbox needs user namespaces it does not get.
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-quic".to_owned(),
        "--no-first-run".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        // Only loopback resolves: a page reaching for a CDN fails here as it would offline.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1".to_owned(),
        format!("--window-size={width},{height}"),
        format!("--user-data-dir={}", profile.display()),
    ];
    let capabilities = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {"binary": driver::CHROMIUM, "args": args},
        "goog:loggingPrefs": {"browser": "ALL", "performance": "ALL"},
    });
    match capabilities {
        Value::Object(map) => map,
        // json! of an object literal is an object.
        _ => serde_json::Map::new(),
    }
}
