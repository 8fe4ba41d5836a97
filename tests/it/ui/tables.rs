//! The tables page: every table the API lists, with its rows and version, filtered as you type,
//! each row leading to its table's page; and the first-paint figure of issue 17 (≤ 300 ms on
//! the demo), measured here and written to `target/ui-screenshots/first-paint.txt`.

use std::collections::BTreeMap;
use std::io::Write;

use fantoccini::Locator;
use serde_json::Value;

use super::{console_url, demo_console, same_number, visit_at_both_sizes};
use crate::common::TestResult;
use crate::common::browser::{PaintTimings, Viewport, screenshot_dir};

/// A bound no healthy load comes near, even a debug build on two loaded cores: the figure is
/// reported, not asserted, but a page taking this long is broken.
const SANE_FIRST_PAINT_MS: f64 = 10_000.0;

/// `group/name` → (rows, version) of every table `GET /features` lists.
fn api_tables(answer: &Value) -> TestResult<BTreeMap<String, (Value, Value)>> {
    let groups = answer["groups"]
        .as_object()
        .ok_or_else(|| format!("GET /features has no groups: {answer}"))?;
    let mut tables = BTreeMap::new();
    for (group, entries) in groups {
        for table in entries.as_array().into_iter().flatten() {
            let name = table["name"].as_str().unwrap_or_default();
            tables.insert(
                format!("{group}/{name}"),
                (table["rows"].clone(), table["version"].clone()),
            );
        }
    }
    Ok(tables)
}

/// The figures as one line each, for the report file and the test's output.
fn first_paint_report(cold: PaintTimings, warm: PaintTimings, tables: usize) -> String {
    let ms = |value: Option<f64>| value.map_or("none".to_owned(), |v| format!("{v:.0}"));
    format!(
        "# The console's tables page (/ui/#/tables) on the small demo ({tables} tables), \
         1280x800,\n# headless Chromium, debug build of the server, in `cargo test`. \
         Milliseconds from navigation start.\n\
         first_contentful_paint_ms={}\ndom_content_loaded_ms={}\nload_ms={}\n\
         last_api_answer_ms={}\n\
         # The same page loaded again in the same browser (assets revalidated with 304s):\n\
         warm_first_contentful_paint_ms={}\nwarm_dom_content_loaded_ms={}\nwarm_load_ms={}\n\
         warm_last_api_answer_ms={}\n",
        ms(cold.first_contentful_paint_ms),
        ms(cold.dom_content_loaded_ms),
        ms(cold.load_ms),
        ms(cold.last_fetch_ms),
        ms(warm.first_contentful_paint_ms),
        ms(warm.dom_content_loaded_ms),
        ms(warm.load_ms),
        ms(warm.last_fetch_ms),
    )
}

#[tokio::test]
async fn the_tables_page_lists_every_table_of_the_api_and_filters_and_links_them() -> TestResult {
    let Some((server, browser)) = demo_console().await? else {
        return Ok(());
    };
    let (status, answer) = server.get("/features").await?;
    assert_eq!(status, 200, "{answer}");
    let expected = api_tables(&answer)?;
    assert_eq!(expected.len(), 3, "the demo's three tables: {answer}");

    // The first load of a fresh browser profile: the figure a user opening the console sees.
    browser.resize(Viewport::Desktop).await?;
    browser
        .open(&console_url(&server, "tables"), "tables")
        .await?;
    let cold = browser.paint_timings().await?;
    browser.check().await?.assert_clean("the first load")?;
    visit_at_both_sizes(&browser, &server, "tables", "tables", "tables").await?;
    browser.resize(Viewport::Desktop).await?;
    browser
        .open(&console_url(&server, "tables"), "tables")
        .await?;
    let warm = browser.paint_timings().await?;
    let report = first_paint_report(cold, warm, expected.len());
    std::fs::create_dir_all(screenshot_dir())?;
    std::fs::write(screenshot_dir().join("first-paint.txt"), &report)?;
    // Straight to stderr so the figure shows in a passing run, as the skip lines do.
    let _ = writeln!(
        std::io::stderr(),
        "console first paint (tables page, small demo): {}",
        report
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let fcp = cold
        .first_contentful_paint_ms
        .ok_or("the browser recorded no first contentful paint")?;
    assert!(
        fcp < SANE_FIRST_PAINT_MS,
        "first paint took {fcp} ms:\n{report}"
    );

    // Every table of the API, no other, each with the API's rows and version.
    let shown = browser
        .eval(
            "return [...document.querySelectorAll('tr[data-table]')].map((tr) => ({
                 table: tr.dataset.table,
                 rows: tr.querySelector('td[data-field=rows]')?.dataset.value,
                 version: tr.querySelector('td[data-field=version]')?.dataset.value,
                 freshness: tr.querySelector('td[data-field=freshness]')?.dataset.freshness,
                 fields: [...tr.querySelectorAll('td[data-field]')].map((td) => td.dataset.field),
             }));",
        )
        .await?;
    let shown = shown.as_array().ok_or("no rows read")?;
    let names: Vec<&str> = shown.iter().filter_map(|r| r["table"].as_str()).collect();
    assert_eq!(
        names,
        expected.keys().map(String::as_str).collect::<Vec<_>>(),
        "the tables page lists exactly the API's tables"
    );
    for row in shown {
        let (rows, version) = &expected[row["table"].as_str().unwrap_or_default()];
        assert!(
            same_number(row["rows"].as_str().unwrap_or_default(), rows),
            "{row} vs {rows}"
        );
        assert!(
            same_number(row["version"].as_str().unwrap_or_default(), version),
            "{row} vs {version}"
        );
        assert_eq!(
            row["fields"],
            serde_json::json!(["rows", "size", "version", "last_write", "freshness"]),
            "{row}"
        );
        // Freshness is the last write against the view's TTL: the demo was just written, and
        // each of its views has a TTL.
        assert_eq!(row["freshness"], "fresh", "{row}");
    }

    // Typing filters the rows.
    browser
        .client()
        .find(Locator::Css("input#table-search"))
        .await?
        .send_keys("interaction")
        .await?;
    let visible = browser
        .eval(
            "return [...document.querySelectorAll('tr[data-table]')]
                 .filter((tr) => tr.getClientRects().length > 0)
                 .map((tr) => tr.dataset.table);",
        )
        .await?;
    assert_eq!(
        visible,
        serde_json::json!(["interaction/user_movie_interactions"])
    );

    // A row leads to its table's page.
    browser
        .client()
        .find(Locator::Css(
            "tr[data-table=\"interaction/user_movie_interactions\"] a",
        ))
        .await?
        .click()
        .await?;
    browser.wait_ready("table").await?;
    let url = browser.client().current_url().await?;
    assert_eq!(
        url.fragment(),
        Some("/tables/interaction/user_movie_interactions")
    );
    browser.check().await?.assert_clean("the table page")?;
    browser.close().await
}
