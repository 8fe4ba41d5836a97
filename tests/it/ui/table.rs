//! A table's page: the statistics and charts are the API's (`GET .../stats`) figure for figure,
//! the schema lists every column, the preview pages through the rows, and once the table is
//! written again the versions and the drift against the previous version show, with the
//! drifted column highlighted as `GET .../drift` says.

use fantoccini::Locator;
use serde_json::{Value, json};

use super::{console_url, demo_console, same_number, visit_at_both_sizes};
use crate::common::TestResult;
use crate::common::browser::{Browser, Viewport};

/// The table and its known columns: `age` is numeric (a histogram), `favorite_genre` a string
/// (top values).
const TABLE: &str = "user/user_profile";
const NUMERIC: &str = "age";
const STRING: &str = "favorite_genre";

/// Per column card of `section#stats`: every `[data-stat]`'s `data-value`, the histogram's
/// bins, the top-values chart's bars, and how many labels (`text`) each chart has.
async fn shown_stats(browser: &Browser) -> TestResult<Value> {
    browser
        .eval(
            "const out = {};
             for (const card of document.querySelectorAll('section#stats div[data-column]')) {
                 const name = card.dataset.column;
                 const stats = {};
                 for (const el of card.querySelectorAll('[data-stat]')) {
                     stats[el.dataset.stat] = el.dataset.value;
                 }
                 const histogram = card.querySelector(`svg[data-histogram=\"${CSS.escape(name)}\"]`);
                 const top = card.querySelector(`svg[data-top-values=\"${CSS.escape(name)}\"]`);
                 out[name] = {
                     stats,
                     bins: histogram ? histogram.querySelectorAll('rect[data-bin]').length : null,
                     histogram_labels: histogram ? histogram.querySelectorAll('text').length : 0,
                     bars: top ? top.querySelectorAll('rect[data-bar]').length : null,
                 };
             }
             return out;",
        )
        .await
}

/// The figures a column's card must show, by `data-stat` name, from its `GET .../stats` entry.
fn expected_figures(column: &Value) -> Vec<(String, Value)> {
    let mut figures: Vec<(String, Value)> = ["rows", "null_count", "null_rate", "distinct"]
        .iter()
        .map(|f| ((*f).to_owned(), column[*f].clone()))
        .collect();
    if let Some(numeric) = column.get("numeric") {
        for f in ["min", "max", "mean", "std"] {
            figures.push((f.to_owned(), numeric[f].clone()));
        }
        for (p, value) in numeric["percentiles"].as_object().into_iter().flatten() {
            figures.push((p.clone(), value.clone()));
        }
    }
    figures
}

#[tokio::test]
async fn a_table_page_shows_the_apis_statistics_histogram_bins_preview_versions_and_drift()
-> TestResult {
    let Some((server, browser)) = demo_console().await? else {
        return Ok(());
    };
    let route = format!("tables/{TABLE}");
    visit_at_both_sizes(&browser, &server, &route, "table", "table").await?;
    browser.resize(Viewport::Desktop).await?;
    browser.open(&console_url(&server, &route), "table").await?;
    // The statistics and their charts, the heart of the page, in view.
    browser
        .eval("document.querySelector('section#stats').scrollIntoView(); return null;")
        .await?;
    browser.screenshot("table-stats-desktop").await?;

    // Every column's figures are the API's, and its chart has one mark per bin or value.
    let (status, stats) = server.get(&format!("/features/{TABLE}/stats")).await?;
    assert_eq!(status, 200, "{stats}");
    let shown = shown_stats(&browser).await?;
    let columns = stats["columns"]
        .as_array()
        .ok_or("no columns in the stats")?;
    assert_eq!(
        shown.as_object().map(|o| o.len()),
        Some(columns.len()),
        "one card per column: {shown}"
    );
    for column in columns {
        let name = column["name"].as_str().unwrap_or_default();
        let card = &shown[name];
        for (figure, value) in expected_figures(column) {
            let text = card["stats"][&figure].as_str().unwrap_or_default();
            assert!(
                same_number(text, &value),
                "{name}.{figure}: the page shows {text:?}, the API {value}"
            );
        }
        match (&column["numeric"], &column["top_values"]) {
            (Value::Object(numeric), _) => assert_eq!(
                card["bins"],
                json!(numeric["histogram"].as_array().map(Vec::len)),
                "{name}: one rect[data-bin] per bin of the API"
            ),
            (_, Value::Object(top)) => assert_eq!(
                card["bars"],
                json!(top["values"].as_array().map(Vec::len)),
                "{name}: one rect[data-bar] per top value of the API"
            ),
            _ => {}
        }
    }
    // The known columns, named: the numeric one's histogram has the API's 20 bins (the demo's
    // ages are not all equal) with axis labels; the string one has its top-values chart.
    let age = columns
        .iter()
        .find(|c| c["name"] == NUMERIC)
        .ok_or("no age column in the stats")?;
    assert_eq!(
        age["numeric"]["histogram"].as_array().map(Vec::len),
        Some(20)
    );
    assert_eq!(shown[NUMERIC]["bins"], 20, "{shown}");
    assert!(
        shown[NUMERIC]["histogram_labels"].as_u64() >= Some(2),
        "axis labels: {shown}"
    );
    assert!(shown[STRING]["bars"].as_u64() >= Some(1), "{shown}");

    // The schema lists every column; the preview's first page holds rows, and its next page
    // follows.
    let schema = browser
        .eval("return [...document.querySelectorAll('section#schema tr[data-column]')].map((tr) => tr.dataset.column);")
        .await?;
    let names: Vec<&str> = columns.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(schema, json!(names));
    let preview_rows = "return document.querySelectorAll('table#preview tbody tr').length;";
    assert!(browser.eval(preview_rows).await?.as_u64() > Some(0));
    browser
        .client()
        .find(Locator::Css("#preview-next"))
        .await?
        .click()
        .await?;
    browser
        .wait_for("table#preview:not([data-offset=\"0\"])")
        .await?;
    browser.check().await?.assert_clean("paging the preview")?;

    // A second version whose ages all moved by 30 years: the versions list both, and the
    // drift section highlights exactly the columns the API says are over the threshold.
    let (status, page) = server.get(&format!("/features/{TABLE}?limit=1000")).await?;
    assert_eq!(status, 200, "{page}");
    let mut records = page["data"].as_array().cloned().ok_or("no rows")?;
    for record in &mut records {
        let age = record[NUMERIC].as_i64().ok_or("an age without value")?;
        record[NUMERIC] = json!(age + 30);
    }
    server
        .save("user", "user_profile", json!({ "records": records }))
        .await?;
    let (status, drift) = server.get(&format!("/features/{TABLE}/drift")).await?;
    assert_eq!(status, 200, "{drift}");
    assert!(
        drift["over_threshold"]
            .as_array()
            .is_some_and(|over| over.contains(&json!(NUMERIC))),
        "{drift}"
    );
    browser.open(&console_url(&server, &route), "table").await?;
    browser
        .check()
        .await?
        .assert_clean("the page of two versions")?;
    browser.screenshot("table-drift-desktop").await?;
    let versions = browser
        .eval("return [...document.querySelectorAll('section#versions tr[data-version]')].map((tr) => tr.dataset.version);")
        .await?;
    assert_eq!(versions, json!(["2", "1"]), "newest first");
    browser
        .client()
        .find(Locator::Css("section#versions svg#row-count-chart"))
        .await?;
    let flagged = browser
        .eval(
            "return Object.fromEntries([...document.querySelectorAll('section#drift tr[data-drift-column]')]
                 .map((tr) => [tr.dataset.driftColumn, tr.dataset.overThreshold]));",
        )
        .await?;
    for column in drift["columns"].as_array().into_iter().flatten() {
        let name = column["name"].as_str().unwrap_or_default();
        let expected = if column["over_threshold"] == true {
            "true"
        } else {
            "false"
        };
        assert_eq!(flagged[name], expected, "{name}: {flagged} vs {drift}");
    }
    browser.close().await
}
