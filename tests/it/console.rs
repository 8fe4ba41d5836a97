//! The web console as HTTP serves it: `/ui/` is an HTML page whose scripts, styles and icons
//! are all files of this server (nothing from elsewhere, so it works offline), each asset with
//! its content type, an `ETag` a browser revalidates with a 304, `/ui` redirecting to `/ui/`,
//! `/` linking the console and the API docs, and with `[auth]` on the pages open while the
//! data they show still needs a token. What the pages do in a browser is `tests/it/ui/`'s.

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION};

use crate::common::{TestResult, TestServer, assert_problem, read};

/// The one absolute URL the assets may hold: the SVG namespace, a name, never fetched.
const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";

/// The values of every `attribute="..."` in `html`.
fn attribute_values<'a>(html: &'a str, attribute: &str) -> Vec<&'a str> {
    let needle = format!(" {attribute}=\"");
    html.match_indices(&needle)
        .filter_map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

/// The modules a script imports (`from "./x.js"`, `import("./x.js")`).
fn imports(script: &str) -> Vec<&str> {
    let mut found = Vec::new();
    for marker in ["from \"", "import(\""] {
        for (at, _) in script.match_indices(marker) {
            let rest = &script[at + marker.len()..];
            if let Some(end) = rest.find('"') {
                found.push(&rest[..end]);
            }
        }
    }
    found
}

/// Status, `Content-Type` and body of a GET.
async fn fetch(server: &TestServer, path: &str) -> TestResult<(u16, String, String)> {
    let response = server.client.get(server.url(path)).send().await?;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    Ok((status, content_type, response.text().await?))
}

/// Every file the console loads, found the way a browser finds them: from `/ui/`'s `src` and
/// `href` attributes, then the modules each script imports, transitively. Asserts on the way
/// that each is a path of this server, never another host.
async fn console_files(server: &TestServer) -> TestResult<Vec<String>> {
    let (status, _, page) = fetch(server, "/ui/").await?;
    assert_eq!(status, 200, "{page}");
    let mut pending: Vec<String> = attribute_values(&page, "src")
        .into_iter()
        .chain(attribute_values(&page, "href"))
        .filter(|link| !link.starts_with('#') && !link.starts_with('/'))
        .map(|link| {
            assert!(!link.contains(':'), "{link} is not a local file");
            link.trim_start_matches("./").to_owned()
        })
        .collect();
    let mut seen = Vec::new();
    while let Some(name) = pending.pop() {
        if seen.contains(&name) {
            continue;
        }
        let (status, _, body) = fetch(server, &format!("/ui/{name}")).await?;
        assert_eq!(status, 200, "/ui/{name}: {body}");
        if name.ends_with(".js") {
            for module in imports(&body) {
                assert!(module.starts_with("./"), "{name} imports {module}");
                pending.push(module.trim_start_matches("./").to_owned());
            }
        }
        seen.push(name);
    }
    Ok(seen)
}

#[tokio::test]
async fn the_console_page_loads_only_files_of_this_server() -> TestResult {
    let server = TestServer::start()?;
    let (status, content_type, page) = fetch(&server, "/ui/").await?;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/html; charset=utf-8");
    // Links leaving the page for another part of this server (the API docs) are paths.
    for link in attribute_values(&page, "href")
        .into_iter()
        .chain(attribute_values(&page, "src"))
    {
        assert!(!link.contains("//"), "{link} points at another host");
    }
    let files = console_files(&server).await?;
    for expected in [
        "style.css",
        "app.js",
        "favicon.svg",
        "tables.js",
        "table.js",
        "try.js",
    ] {
        assert!(
            files.iter().any(|f| f == expected),
            "{expected} not loaded: {files:?}"
        );
    }
    // No asset names another host: no CDN, web font or analytics URL, in any file.
    for name in &files {
        let (_, _, body) = fetch(&server, &format!("/ui/{name}")).await?;
        let without_namespace = body.replace(SVG_NAMESPACE, "");
        for scheme in ["http://", "https://", "//cdn", "fonts.googleapis"] {
            assert!(!without_namespace.contains(scheme), "{name} holds {scheme}");
        }
    }
    Ok(())
}

#[tokio::test]
async fn each_console_asset_has_its_content_type_and_a_policy_that_keeps_it_local() -> TestResult {
    let server = TestServer::start()?;
    let files = console_files(&server).await?;
    for name in &files {
        let response = server
            .client
            .get(server.url(&format!("/ui/{name}")))
            .send()
            .await?;
        let header = |name| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let expected = match name.rsplit('.').next() {
            Some("js") => "text/javascript; charset=utf-8",
            Some("css") => "text/css; charset=utf-8",
            Some("svg") => "image/svg+xml",
            Some("html") => "text/html; charset=utf-8",
            other => return Err(format!("unexpected asset kind {other:?} ({name})").into()),
        };
        assert_eq!(header(CONTENT_TYPE.as_str()), expected, "{name}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{name}");
        assert_eq!(header(CACHE_CONTROL.as_str()), "no-cache", "{name}");
        let policy = header("content-security-policy");
        assert!(policy.contains("default-src 'none'"), "{name}: {policy}");
        assert!(policy.contains("connect-src 'self'"), "{name}: {policy}");
        assert!(policy.contains("script-src 'self'"), "{name}: {policy}");
    }
    Ok(())
}

#[tokio::test]
async fn an_asset_the_browser_already_holds_is_a_304_without_a_body() -> TestResult {
    let server = TestServer::start()?;
    for path in ["/ui/", "/ui/app.js", "/ui/style.css", "/"] {
        let first = server.client.get(server.url(path)).send().await?;
        assert_eq!(first.status(), StatusCode::OK, "{path}");
        let tag = first
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| format!("{path} has no ETag"))?
            .to_owned();
        assert!(tag.starts_with('"') && tag.ends_with('"'), "{path}: {tag}");
        let full = first.bytes().await?;
        assert!(!full.is_empty());
        // The same tag, strong or weak (as a proxy may pass it on), in a list or alone.
        for presented in [tag.clone(), format!("W/{tag}"), format!("\"0000\", {tag}")] {
            let again = server
                .client
                .get(server.url(path))
                .header(IF_NONE_MATCH, &presented)
                .send()
                .await?;
            assert_eq!(
                again.status(),
                StatusCode::NOT_MODIFIED,
                "{path} {presented}"
            );
            assert_eq!(
                again.headers().get(ETAG).and_then(|v| v.to_str().ok()),
                Some(tag.as_str())
            );
            assert!(again.bytes().await?.is_empty(), "{path}: a 304 has no body");
        }
        // Another tag (an older build's) gets the whole file again.
        let other = server
            .client
            .get(server.url(path))
            .header(IF_NONE_MATCH, "\"an-older-build\"")
            .send()
            .await?;
        assert_eq!(other.status(), StatusCode::OK, "{path}");
        assert_eq!(other.bytes().await?, full, "{path}");
    }
    Ok(())
}

#[tokio::test]
async fn ui_without_its_slash_redirects_to_the_console() -> TestResult {
    let server = TestServer::start()?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let response = client.get(server.url("/ui")).send().await?;
    assert!(response.status().is_redirection(), "{}", response.status());
    assert_eq!(
        response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok()),
        Some("/ui/")
    );
    Ok(())
}

#[tokio::test]
async fn the_root_page_links_the_console_and_the_api_docs() -> TestResult {
    let server = TestServer::start()?;
    let (status, content_type, page) = fetch(&server, "/").await?;
    assert_eq!(status, 200, "{page}");
    assert_eq!(content_type, "text/html; charset=utf-8");
    let links = attribute_values(&page, "href");
    for target in ["/ui/", "/docs/"] {
        assert!(links.contains(&target), "{target} not linked: {links:?}");
        let (status, _, _) = fetch(&server, target).await?;
        assert_eq!(status, 200, "{target}");
    }
    Ok(())
}

#[tokio::test]
async fn a_file_the_console_does_not_have_is_a_404_problem() -> TestResult {
    let server = TestServer::start()?;
    for path in ["/ui/nope.js", "/ui/index.htm", "/ui/assets/app.js"] {
        let (status, body) = read(server.client.get(server.url(path)).send().await?).await?;
        assert_problem(status, &body, 404, "route_not_found");
    }
    let response = server.client.post(server.url("/ui/")).send().await?;
    let (status, body) = read(response).await?;
    assert_problem(status, &body, 405, "method_not_allowed");
    Ok(())
}

#[tokio::test]
async fn with_auth_on_the_console_loads_without_a_token_and_its_data_routes_still_need_one()
-> TestResult {
    let (server, _writer) = crate::auth::secured_server().await?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    for path in [
        "/",
        "/ui/",
        "/ui/app.js",
        "/ui/style.css",
        "/ui/favicon.svg",
    ] {
        let response = client.get(server.url(path)).send().await?;
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
    let response = client.get(server.url("/ui")).send().await?;
    assert!(response.status().is_redirection(), "{}", response.status());
    // What the pages call: tables, a table's facts, pages and versions, the registry, lookups
    // and the performance report.
    for path in [
        "/features",
        "/features/user/user_profile/info",
        "/features/user/user_profile?limit=20",
        "/features/user/user_profile/versions?limit=1",
        "/registry/feature-views",
        "/performance",
    ] {
        let (status, body) = read(client.get(server.url(path)).send().await?).await?;
        assert_problem(status, &body, 401, "unauthorized");
    }
    let (status, body) = read(
        client
            .post(server.url("/get-online-features"))
            .json(&serde_json::json!({"features": ["user_profile:age"], "entities": {"user_id": [1]}}))
            .send()
            .await?,
    )
    .await?;
    assert_problem(status, &body, 401, "unauthorized");
    Ok(())
}
