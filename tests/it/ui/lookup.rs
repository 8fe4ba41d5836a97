//! The "Try it" page's online lookup: entity keys typed into the form give the values,
//! statuses and event times that `POST /get-online-features` answers for the same keys, by
//! feature service and by a list of features; the curl command shown is that request.

use fantoccini::Locator;
use serde_json::{Value, json};

use super::{console_url, demo_console, same_json};
use crate::common::browser::{Browser, Viewport};
use crate::common::{TestResult, TestServer};

/// Users 1 and 2 exist in the demo, 999 does not (NOT_FOUND); their movies 1, 2 and 3.
const ENTITIES: &str = r#"{"user_id": [1, 2, 999], "movie_id": [1, 2, 3]}"#;

/// Replaces the text of the form field `selector` by `text`, as a user types it.
async fn type_into(browser: &Browser, selector: &str, text: &str) -> TestResult {
    let field = browser.client().find(Locator::Css(selector)).await?;
    field.clear().await?;
    field.send_keys(text).await?;
    Ok(())
}

/// Submits the lookup form and waits for its answer; fails if the page shows an error.
async fn submit(browser: &Browser) -> TestResult {
    browser
        .client()
        .find(Locator::Css("#lookup-submit"))
        .await?
        .click()
        .await?;
    browser
        .wait_for("#lookup-output[data-ready=\"true\"]")
        .await?;
    let error = browser
        .eval("const e = document.querySelector('#lookup-output [data-error]'); return e ? e.textContent : null;")
        .await?;
    if !error.is_null() {
        return Err(format!("the lookup shows an error: {error}").into());
    }
    Ok(())
}

/// Asserts that `table#lookup-result` shows `answer` (a column-major API answer) cell by
/// cell: value, status and event time of every feature for every entity row.
async fn assert_shows(browser: &Browser, answer: &Value) -> TestResult {
    let cells = browser
        .eval(
            "return [...document.querySelectorAll('table#lookup-result td[data-feature]')]
                 .map((td) => [td.dataset.feature, Number(td.dataset.entityIndex),
                               td.dataset.value, td.dataset.status, td.dataset.eventTime]);",
        )
        .await?;
    let cells = cells.as_array().ok_or("no cells read")?;
    let names = answer["metadata"]["feature_names"]
        .as_array()
        .ok_or_else(|| format!("no feature_names in {answer}"))?;
    let mut expected = 0;
    for (f, name) in names.iter().enumerate() {
        let result = &answer["results"][f];
        for (i, value) in result["values"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
        {
            expected += 1;
            let cell = cells
                .iter()
                .find(|c| c[0] == *name && c[1] == i)
                .ok_or_else(|| format!("no cell for {name} row {i}"))?;
            let shown = cell[2].as_str().unwrap_or_default();
            assert!(
                same_json(shown, value),
                "{name} row {i}: the page shows {shown}, the API {value}"
            );
            assert_eq!(cell[3], result["statuses"][i], "{name} row {i}");
            assert_eq!(cell[4], result["event_timestamps"][i], "{name} row {i}");
        }
    }
    assert_eq!(cells.len(), expected, "one cell per feature and entity row");
    Ok(())
}

/// The API's answer to `body`.
async fn api_lookup(server: &TestServer, body: &Value) -> TestResult<Value> {
    let (status, answer) = server.post("/get-online-features", body).await?;
    assert_eq!(status, 200, "{answer}");
    Ok(answer)
}

#[tokio::test]
async fn the_lookup_form_shows_the_values_and_statuses_the_api_returns_for_the_same_keys()
-> TestResult {
    let Some((server, browser)) = demo_console().await? else {
        return Ok(());
    };
    browser.resize(Viewport::Desktop).await?;
    browser.open(&console_url(&server, "try"), "try").await?;
    let entities: Value = serde_json::from_str(ENTITIES)?;

    // By feature service.
    browser
        .client()
        .find(Locator::Css("select#lookup-service"))
        .await?
        .select_by_value("movie_recommendation_service")
        .await?;
    type_into(&browser, "textarea#lookup-entities", ENTITIES).await?;
    submit(&browser).await?;
    let by_service = api_lookup(
        &server,
        &json!({"feature_service": "movie_recommendation_service", "entities": entities}),
    )
    .await?;
    assert_shows(&browser, &by_service).await?;
    // The demo's keys give several statuses: present values, and nothing for user 999.
    let statuses = by_service.to_string();
    assert!(
        statuses.contains("PRESENT") && statuses.contains("NOT_FOUND"),
        "{by_service}"
    );
    browser.screenshot("try-lookup-desktop").await?;
    let curl = browser
        .client()
        .find(Locator::Css("pre#lookup-curl"))
        .await?
        .text()
        .await?;
    assert!(
        curl.contains(&server.url("/get-online-features"))
            && curl.contains("movie_recommendation_service")
            && curl.contains(r#""user_id":[1,2,999]"#),
        "{curl}"
    );

    // By features listed one per line, with no service chosen.
    browser
        .client()
        .find(Locator::Css("select#lookup-service"))
        .await?
        .select_by_value("")
        .await?;
    type_into(
        &browser,
        "textarea#lookup-features",
        "user_profile:age\nmovie_metadata:genre\nuser_movie_interactions:rating",
    )
    .await?;
    submit(&browser).await?;
    let by_features = api_lookup(
        &server,
        &json!({"features": ["user_profile:age", "movie_metadata:genre",
                             "user_movie_interactions:rating"],
                "entities": entities}),
    )
    .await?;
    assert_shows(&browser, &by_features).await?;
    browser.check().await?.assert_clean("two lookups")?;
    browser.close().await
}
