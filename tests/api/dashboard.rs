//! The `/dashboard` page: sessions over HTTP, and the real page in headless Chromium (driven
//! through the DevTools protocol): sign in, see the charts and the numbers of the seeded
//! workload, watch the page refresh itself, sign out. The screenshot lands in
//! `target/dashboard.png`.
//!
//! Chromium must be installed (`apt-get install -y chromium`; `bash .ci/run` does it). Without
//! it the browser test fails and says so: a dashboard nobody looked at is not tested.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use chromiumoxide::browser::{Browser, BrowserConfig};
use chromiumoxide::cdp::browser_protocol::network::CookieSameSite;
use chromiumoxide::page::ScreenshotParams;
use chromiumoxide::Page;
use futures::StreamExt;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{spawn_app, As, TestApp};
use crate::reports::{expected_open, seed_workload, settle, Workload, ADA, ANN, ROOT};

/// Where Chromium is: `$CHROMIUM`, or Debian's `/usr/bin/chromium`.
fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "the dashboard browser test needs Chromium at {} (or set CHROMIUM): install it with \
         `apt-get install -y chromium` (bash .ci/run installs it)",
        path.display()
    );
    path
}

/// `target/` of this workspace (or `$CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
}

/// A client that keeps cookies and does not follow redirects, like a careful browser test.
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

async fn sign_in(app: &TestApp, http: &reqwest::Client, token: &str) -> reqwest::Response {
    http.post(app.url("/dashboard/sign-in"))
        .form(&[("token", token)])
        .send()
        .await
        .expect("sign in")
}

fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("subdesk_session="))
        .map(str::to_string)
}

#[tokio::test]
async fn signing_in_trades_the_token_for_an_http_only_session_and_signing_out_ends_it() {
    let app = spawn_app().await;
    let http = client();
    let page = http.get(app.url("/dashboard")).send().await.expect("GET");
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_string();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"));
    let form = page.text().await.expect("html");
    assert!(form.contains("<form method=\"post\" action=\"/dashboard/sign-in\">"));

    let wrong = sign_in(&app, &http, "sdk_not-a-token").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(session_cookie(&wrong).is_none());
    let ann = app.token(ANN).await;
    let plain_customer = sign_in(&app, &http, &ann).await;
    assert_eq!(plain_customer.status(), StatusCode::FORBIDDEN);
    assert!(plain_customer
        .text()
        .await
        .expect("html")
        .contains("org admins, partners and support staff"));

    let ada = app.token(ADA).await;
    let signed_in = sign_in(&app, &http, &ada).await;
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    assert_eq!(signed_in.headers()["location"], "/dashboard");
    let cookie = session_cookie(&signed_in).expect("session cookie");
    for part in ["HttpOnly", "SameSite=Strict", "Path=/dashboard"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    assert!(!cookie.contains(&ada), "the cookie is not the token");
    let session = cookie
        .split(';')
        .next()
        .expect("pair")
        .trim_start_matches("subdesk_session=")
        .to_string();
    let db = app.db().await;
    let stored: i64 = db
        .query_one(
            "SELECT count(*) FROM dashboard_sessions WHERE session_hash = sha256($1::text::bytea)",
            &[&session],
        )
        .await
        .expect("sessions")
        .get(0);
    assert_eq!(stored, 1, "only the session's hash is stored");

    let with_session = |path: &str| {
        http.get(app.url(path))
            .header("cookie", format!("subdesk_session={session}"))
            .send()
    };
    let dashboard = with_session("/dashboard").await.expect("GET");
    assert_eq!(dashboard.status(), StatusCode::OK);
    let html = dashboard.text().await.expect("html");
    assert!(html.contains("Signed in as <strong>ada@acme.test</strong> (org admin of acme)"));
    let panels = with_session("/dashboard/panels").await.expect("GET");
    assert_eq!(panels.status(), StatusCode::OK);
    assert!(panels
        .text()
        .await
        .expect("html")
        .contains("data-kpi=\"open-cases\""));
    let css = http
        .get(app.url("/dashboard/assets/dashboard.css"))
        .send()
        .await
        .expect("css");
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");

    // A form posted from another site does not sign out (nor in).
    let forged = http
        .post(app.url("/dashboard/sign-out"))
        .header("cookie", format!("subdesk_session={session}"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("POST");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let signed_out = http
        .post(app.url("/dashboard/sign-out"))
        .header("cookie", format!("subdesk_session={session}"))
        .send()
        .await
        .expect("POST");
    assert_eq!(signed_out.status(), StatusCode::SEE_OTHER);
    assert!(session_cookie(&signed_out).is_some_and(|c| c.contains("Max-Age=0")));
    let after = with_session("/dashboard/panels").await.expect("GET");
    assert_eq!(after.status(), StatusCode::UNAUTHORIZED);

    // Revoking the token ends its sessions too.
    let again = session_cookie(&sign_in(&app, &http, &ada).await).expect("cookie");
    db.execute("UPDATE api_tokens SET revoked_at = now()", &[])
        .await
        .expect("revoke");
    let revoked = http
        .get(app.url("/dashboard/panels"))
        .header("cookie", again.split(';').next().expect("pair"))
        .send()
        .await
        .expect("GET");
    assert_eq!(revoked.status(), StatusCode::UNAUTHORIZED);
}

/// Runs `expression` in the page and returns its value.
async fn eval(page: &Page, expression: &str) -> Value {
    page.evaluate(expression)
        .await
        .unwrap_or_else(|e| panic!("evaluate {expression}: {e}"))
        .into_value()
        .unwrap_or_else(|e| panic!("value of {expression}: {e}"))
}

/// Waits until `condition` (JavaScript) holds in the page: a click that submits a form
/// navigates a moment later, not before `click` returns.
async fn wait_until(page: &Page, condition: &str, what: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let holds = page
            .evaluate(condition)
            .await
            .ok()
            .and_then(|v| v.into_value::<bool>().ok())
            .unwrap_or(false);
        if holds {
            return;
        }
        if std::time::Instant::now() >= deadline {
            let body = page.content().await.unwrap_or_default();
            panic!("{what}: timed out; the page is:\n{body}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The key figures of the page by `data-kpi` name.
async fn kpis(page: &Page) -> BTreeMap<String, String> {
    let value = eval(
        page,
        "Object.fromEntries([...document.querySelectorAll('[data-kpi]')]\
           .map(e => [e.dataset.kpi, e.textContent.trim()]))",
    )
    .await;
    serde_json::from_value(value).expect("kpis")
}

/// The cells of the table rows of panel `id`, row by row.
async fn table_rows(page: &Page, selector: &str) -> Vec<Vec<String>> {
    let value = eval(
        page,
        &format!(
            "[...document.querySelectorAll('{selector} tbody tr')]\
               .map(r => [...r.children].map(c => c.textContent.trim()))"
        ),
    )
    .await;
    serde_json::from_value(value).expect("rows")
}

/// The number printed above the bar of `category` in a bar chart (as collected by the
/// charts query below): each bar's total is drawn just before its category label.
fn bar_total(chart: &Value, category: &str) -> String {
    let texts: Vec<String> = serde_json::from_value(chart["texts"].clone()).expect("texts");
    let at = texts
        .iter()
        .position(|t| t == category)
        .unwrap_or_else(|| panic!("no bar labelled {category}: {texts:?}"));
    texts
        .get(at.wrapping_sub(1))
        .cloned()
        .unwrap_or_else(|| panic!("no total before {category}: {texts:?}"))
}

/// [`bar_total`] for a category whose label the chart may have shortened (`jira-servi…`).
fn bar_total_by_prefix(chart: &Value, category: &str) -> String {
    let texts: Vec<String> = serde_json::from_value(chart["texts"].clone()).expect("texts");
    let label = texts
        .iter()
        .find(|t| {
            *t == category || (t.ends_with('…') && category.starts_with(t.trim_end_matches('…')))
        })
        .unwrap_or_else(|| panic!("no bar labelled {category}: {texts:?}"))
        .clone();
    bar_total(chart, &label)
}

/// Counts taken from the events with SQL, as the report tests do.
async fn from_events(app: &TestApp, sql: &str) -> i64 {
    app.db()
        .await
        .query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

#[tokio::test]
async fn the_dashboard_shows_the_seeded_workload_in_headless_chromium() {
    let executable = chromium();
    let Workload {
        app,
        clock,
        acme_entitlement,
    } = seed_workload().await;
    let root = app.token(ROOT).await;

    let profile = tempfile::tempdir().expect("browser profile");
    let config = BrowserConfig::builder()
        .chrome_executable(executable)
        .no_sandbox()
        .user_data_dir(profile.path())
        .window_size(1440, 1000)
        .viewport(None)
        .args([
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .build()
        .expect("browser config");
    let (mut browser, mut handler) = Browser::launch(config).await.expect("launch Chromium");
    let events = tokio::spawn(async move { while handler.next().await.is_some() {} });

    let page = browser
        .new_page(app.url("/dashboard"))
        .await
        .expect("open the dashboard");
    wait_until(
        &page,
        "document.querySelector('#token') !== null",
        "the sign-in form",
    )
    .await;
    // Sign in through the form, as a person would.
    page.find_element("#token")
        .await
        .expect("token field")
        .click()
        .await
        .expect("focus")
        .type_str(&root)
        .await
        .expect("type the token");
    page.find_element("button[type=submit]")
        .await
        .expect("sign-in button")
        .click()
        .await
        .expect("sign in");
    wait_until(
        &page,
        "document.querySelector('#panels [data-kpi]') !== null",
        "the dashboard after signing in",
    )
    .await;
    let url = page.url().await.expect("url").unwrap_or_default();
    assert!(url.ends_with("/dashboard"), "{url}");
    assert!(!url.contains(&root), "the token never appears in a URL");
    let cookies = page.get_cookies().await.expect("cookies");
    let session = cookies
        .iter()
        .find(|c| c.name == "subdesk_session")
        .expect("session cookie");
    assert!(session.http_only);
    assert_eq!(session.same_site, Some(CookieSameSite::Strict));
    assert_eq!(
        eval(&page, "document.cookie").await,
        json!(""),
        "scripts cannot read the session"
    );

    // The numbers of the workload, counted from the events.
    let open = from_events(
        &app,
        "SELECT count(*) FROM (SELECT DISTINCT ON (aggregate_id) event_type FROM events \
          WHERE aggregate_type = 'SupportCase' AND event_type IN ('CaseOpened', \
                'InvestigationStarted', 'CustomerInfoRequested', 'CustomerResponded', \
                'CaseReopened', 'CaseResolved', 'CaseAutoResolved', 'CaseClosed') \
          ORDER BY aggregate_id, sequence DESC) last \
          WHERE event_type NOT IN ('CaseResolved', 'CaseAutoResolved', 'CaseClosed')",
    )
    .await;
    let opened = from_events(
        &app,
        "SELECT count(*) FROM events WHERE event_type = 'CaseOpened'",
    )
    .await;
    let auto_resolved = from_events(
        &app,
        "SELECT count(*) FROM events WHERE event_type = 'CaseAutoResolved'",
    )
    .await;
    let cancellations = from_events(
        &app,
        "SELECT count(*) FROM events WHERE event_type = 'SubscriptionCancelled'",
    )
    .await;
    let figures = kpis(&page).await;
    assert_eq!(figures["open-cases"], open.to_string(), "{figures:?}");
    assert_eq!(figures["opened"], opened.to_string());
    assert_eq!(figures["auto-resolved"], auto_resolved.to_string());
    assert_eq!(figures["renewals-due"], "3");
    assert!(figures["sla-attainment"].ends_with('%'));

    // Charts are drawn (SVG with a size on screen) for every panel, with their labels.
    let charts = eval(
        &page,
        "[...document.querySelectorAll('svg.chart')].map(s => ({\
            name: s.getAttribute('aria-label'), \
            width: s.getBoundingClientRect().width, \
            texts: [...s.querySelectorAll('text')].map(t => t.textContent.trim()), \
            text: s.textContent.replace(/\\s+/g, ' ').trim()}))",
    )
    .await;
    let charts = charts.as_array().expect("charts").clone();
    let names: Vec<&str> = charts.iter().filter_map(|c| c["name"].as_str()).collect();
    for expected in [
        "Open cases by priority, stacked by status",
        "Cases opened, resolved and auto-resolved per day",
        "Cases opened per product",
        "First-response SLA attainment by priority",
        "Median time to first response by priority, against the target",
        "Median time to resolution by priority",
        "Seats in force by product",
        "Cancellations per month",
    ] {
        assert!(names.contains(&expected), "chart {expected} in {names:?}");
    }
    for chart in &charts {
        assert!(
            chart["width"].as_f64().unwrap_or(0.0) > 200.0,
            "drawn: {chart}"
        );
    }
    let open_chart = charts
        .iter()
        .find(|c| c["name"] == "Open cases by priority, stacked by status")
        .expect("open cases chart");
    let text = open_chart["text"].as_str().expect("text");
    for label in ["P1", "P2", "P3", "P4", "open", "investigating"] {
        assert!(text.contains(label), "{label} in {text}");
    }
    // The bars stand for the open cases of each priority, counted from the events.
    let open_by_priority = expected_open(&app, None).await.into_iter().fold(
        BTreeMap::new(),
        |mut by_priority, ((_, priority), n)| {
            *by_priority.entry(format!("P{priority}")).or_insert(0i64) += n;
            by_priority
        },
    );
    for priority in ["P1", "P2", "P3", "P4"] {
        let expected = open_by_priority.get(priority).copied().unwrap_or(0);
        assert_eq!(
            bar_total(open_chart, priority),
            expected.to_string(),
            "the {priority} bar of the open cases chart"
        );
    }
    assert!(
        open_by_priority.values().filter(|n| **n > 0).count() >= 2,
        "the workload has open cases of several priorities: {open_by_priority:?}"
    );

    let products = charts
        .iter()
        .find(|c| c["name"] == "Cases opened per product")
        .expect("products chart");
    assert!(products["text"]
        .as_str()
        .is_some_and(|t| t.contains("jira-software") && t.contains("confluence")));

    // Tables next to the charts hold the same numbers.
    let open_rows = table_rows(&page, "#open-cases").await;
    let all_open = open_rows.last().expect("total row");
    assert_eq!(all_open[0], "all open");
    assert_eq!(all_open[5], open.to_string());
    for (column, priority) in ["P1", "P2", "P3", "P4"].iter().enumerate() {
        assert_eq!(
            all_open[column + 1],
            bar_total(open_chart, priority),
            "the table and the chart agree on {priority}"
        );
    }
    let product_rows = table_rows(&page, "#products").await;
    assert!(product_rows.len() >= 2, "{product_rows:?}");
    for row in &product_rows {
        assert_eq!(
            bar_total_by_prefix(products, &row[0]),
            row[1],
            "the chart and the table agree on the cases opened for {}",
            row[0]
        );
    }
    let opened_per_product: i64 = product_rows
        .iter()
        .map(|row| row[1].parse::<i64>().expect("a count"))
        .sum();
    assert_eq!(
        opened_per_product, opened,
        "the products' bars add up to the cases opened"
    );
    let months = table_rows(&page, "#cancellations").await;
    let march = months.iter().find(|r| r[0] == "2026-03").expect("March");
    assert_eq!(march[1], cancellations.to_string());
    let renewals = table_rows(&page, "#renewals").await;
    assert_eq!(renewals.len(), 3);

    std::fs::create_dir_all(target_dir()).expect("target dir");
    let screenshot = target_dir().join("dashboard.png");
    page.save_screenshot(
        ScreenshotParams::builder().full_page(true).build(),
        &screenshot,
    )
    .await
    .expect("screenshot");
    assert!(std::fs::metadata(&screenshot).is_ok_and(|m| m.len() > 10_000));

    // The page refreshes itself: a case opened now shows up within a refresh or two.
    let ada = app.token(ADA).await;
    clock.advance(chrono::Duration::minutes(5));
    app.open_case(
        &ada,
        json!({"entitlement_number": acme_entitlement, "product": "jira-software",
               "impact": 1, "summary": "New outage",
               "description": "Opened while the dashboard is open."}),
    )
    .await;
    settle(&app, "reports").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(25);
    loop {
        if kpis(&page).await["open-cases"] == (open + 1).to_string() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the page did not refresh by itself"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let status = eval(
        &page,
        "document.getElementById('refresh-status').textContent",
    )
    .await;
    assert!(status.as_str().is_some_and(|s| s.starts_with("Updated at")));

    // Signing out ends the session and shows the sign-in form again.
    page.find_element("form[action='/dashboard/sign-out'] button")
        .await
        .expect("sign-out button")
        .click()
        .await
        .expect("sign out");
    wait_until(
        &page,
        "document.querySelector('#token') !== null",
        "the sign-in form after signing out",
    )
    .await;
    let left: i64 = app
        .db()
        .await
        .query_one("SELECT count(*) FROM dashboard_sessions", &[])
        .await
        .expect("sessions")
        .get(0);
    assert_eq!(left, 0);

    browser.close().await.expect("close Chromium");
    let _ = browser.wait().await;
    events.abort();
}

#[tokio::test]
async fn a_partner_without_access_to_cases_sees_only_the_subscription_half() {
    let Workload { app, .. } = seed_workload().await;
    let pim = app
        .token(As::partner(
            "pim@cloudwise.test",
            "p-cloudwise",
            &["view_customers"],
        ))
        .await;
    let http = client();
    let cookie = session_cookie(&sign_in(&app, &http, &pim).await).expect("cookie");
    let html = http
        .get(app.url("/dashboard/panels"))
        .header("cookie", cookie.split(';').next().expect("pair"))
        .send()
        .await
        .expect("GET")
        .text()
        .await
        .expect("html");
    assert!(html.contains("No case reports: case reports need the partner scope `access_cases`"));
    assert!(!html.contains("id=\"open-cases\""));
    assert!(html.contains("id=\"subscriptions\""));
    // Only what p-cloudwise sold: acme's three subscriptions, none of globex's or initech's.
    assert!(html.contains("data-kpi=\"subscriptions\">3<"), "{html}");
}
