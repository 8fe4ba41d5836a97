//! The web console's assets, compiled into the binary so `/ui/` works with no network and no
//! files beside the executable.
//!
//! The console is plain HTML, CSS and JavaScript modules with no build step: what is in
//! `assets/` is exactly what the browser runs. It only calls the REST API of the server that
//! served it (its Content-Security-Policy says so), and draws its charts as SVG itself, so it
//! needs no charting library and nothing from the internet. `api::console` serves these
//! bytes; nothing here does I/O.

use std::sync::LazyLock;

use sha2::{Digest, Sha256};

/// One file of the console.
#[derive(Debug)]
pub struct Asset {
    /// The name under `/ui/` (`app.js` is served at `/ui/app.js`).
    pub name: &'static str,
    /// The `Content-Type` it is served with.
    pub content_type: &'static str,
    /// Its bytes.
    pub body: &'static [u8],
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// Declares the table of assets from file names under `assets/`, so a file cannot be listed
/// under a name other than its own.
macro_rules! assets {
    ($($name:literal => $content_type:expr),* $(,)?) => {
        &[$(Asset {
            name: $name,
            content_type: $content_type,
            body: include_bytes!(concat!("assets/", $name)),
        }),*]
    };
}

/// Every file the console is made of; `index.html` is the page at `/ui/`.
pub const ASSETS: &[Asset] = assets![
    "index.html" => HTML,
    "style.css" => CSS,
    "favicon.svg" => SVG,
    "app.js" => JS,
    "api.js" => JS,
    "dom.js" => JS,
    "charts.js" => JS,
    "format.js" => JS,
    "tables.js" => JS,
    "table.js" => JS,
    "table_stats.js" => JS,
    "registry.js" => JS,
    "try.js" => JS,
    "server.js" => JS,
];

/// The page served at `/`: where a person who opens the server's address finds the console
/// and the API documentation.
pub const ROOT_PAGE: Asset = Asset {
    name: "root.html",
    content_type: HTML,
    body: include_bytes!("assets/root.html"),
};

/// The asset served as `name`, if the console has one.
pub fn asset(name: &str) -> Option<&'static Asset> {
    ASSETS.iter().find(|a| a.name == name)
}

/// The strong `ETag` of an asset's bytes (quoted). Computed once per asset and process: the
/// bytes are fixed in the binary, so the tag changes exactly when an upgrade changes a file,
/// and browsers revalidate with a 304 instead of downloading again.
pub fn etag(asset: &Asset) -> &'static str {
    static TAGS: LazyLock<Vec<(&'static str, String)>> = LazyLock::new(|| {
        ASSETS
            .iter()
            .chain(std::iter::once(&ROOT_PAGE))
            .map(|a| (a.name, tag_of(a.body)))
            .collect()
    });
    TAGS.iter()
        .find(|(name, _)| *name == asset.name)
        .map_or("\"\"", |(_, tag)| tag.as_str())
}

/// The first 16 bytes of the sha256, hex, quoted: unique enough for a handful of files.
fn tag_of(body: &[u8]) -> String {
    let digest = Sha256::digest(body);
    let hex: String = digest[..16].iter().map(|b| format!("{b:02x}")).collect();
    format!("\"{hex}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_distinct_name_and_tag() {
        let mut names: Vec<_> = ASSETS.iter().map(|a| a.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ASSETS.len());
        let mut tags: Vec<_> = ASSETS.iter().map(etag).collect();
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len());
        assert!(ASSETS.iter().all(|a| !a.body.is_empty()));
    }
}
