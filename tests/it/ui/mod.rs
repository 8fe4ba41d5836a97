//! The console at `/ui/` in a real browser (headless Chromium over WebDriver; see
//! `common/browser`): every page loads quietly and offline at a laptop's and a phone's size,
//! and what it shows is what the API answers.

mod harness;
