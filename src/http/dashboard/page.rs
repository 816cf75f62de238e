//! The dashboard's HTML: semantic markup (header, main, sections with headings, figures
//! with captions, tables with captions and header cells), every value escaped. Key figures
//! carry `data-kpi` names so that tests and scripts can find them.

use std::fmt::Write;

use subdesk_aggregates::ActorRole;

use super::charts::{self, Bars, Series};
use super::{Data, PageParams};
use crate::auth::Principal;
use crate::http::error::ApiError;
use crate::http::reports::{
    CasesReport, Period, SlaReport, SlaRow, SubscriptionsReport, RENEWAL_WINDOW_DAYS,
};

/// Escapes text for HTML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A duration in seconds as people read it: `45 min`, `3 h 20 min`, `2 d 4 h`.
pub fn duration(seconds: Option<f64>) -> String {
    let Some(seconds) = seconds else {
        return "–".into();
    };
    let minutes = (seconds / 60.0).round() as i64;
    if minutes < 60 {
        return format!("{minutes} min");
    }
    let (days, hours, minutes) = (minutes / 1440, minutes % 1440 / 60, minutes % 60);
    match (days, minutes) {
        (0, 0) => format!("{hours} h"),
        (0, m) => format!("{hours} h {m} min"),
        (d, _) if hours == 0 => format!("{d} d"),
        (d, _) => format!("{d} d {hours} h"),
    }
}

fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "–".into(), |v| format!("{:.0}%", v * 100.0))
}

fn head(title: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n\
         <link rel=\"stylesheet\" href=\"/dashboard/assets/dashboard.css\">\n\
         <script src=\"/dashboard/assets/dashboard.js\" defer></script>\n</head>\n",
        esc(title)
    )
}

pub fn sign_in(error: Option<&str>) -> String {
    let error = error.map_or_else(String::new, |e| {
        format!("<p class=\"error\" role=\"alert\">{}</p>\n", esc(e))
    });
    format!(
        "{}<body class=\"signin\">\n<main>\n<h1>subdesk <span>dashboard</span></h1>\n\
         <p>Reports on support cases and subscriptions, for support staff, partners and \
         org admins.</p>\n{error}\
         <form method=\"post\" action=\"/dashboard/sign-in\">\n\
         <label for=\"token\">API token</label>\n\
         <input id=\"token\" name=\"token\" type=\"password\" autocomplete=\"off\" required \
         spellcheck=\"false\">\n\
         <button type=\"submit\">Sign in</button>\n</form>\n\
         <p class=\"hint\">The token stays on the server: signing in starts a session kept \
         in a cookie this page's scripts cannot read. An admin issues tokens with \
         <code>subdesk token issue</code>.</p>\n</main>\n</body>\n</html>\n",
        head("Sign in · subdesk dashboard")
    )
}

/// Who the principal is and what the dashboard covers for them.
fn scope(principal: &Principal) -> String {
    match principal.role {
        ActorRole::Customer => format!(
            "org admin of {}",
            esc(principal.org_id.as_deref().unwrap_or("?"))
        ),
        ActorRole::Partner => format!(
            "partner {}: its customers' cases and the subscriptions it sold",
            esc(principal.partner_id.as_deref().unwrap_or("?"))
        ),
        role => format!("{role}: every customer"),
    }
}

pub fn dashboard(
    principal: &Principal,
    params: &PageParams,
    period: Option<Period>,
    query: &str,
    panels: &str,
) -> String {
    let value = |v: &Option<String>| esc(v.as_deref().unwrap_or_default());
    // The date fields show the period in force, the default one included.
    let day = |typed: &Option<String>, resolved: Option<chrono::NaiveDate>| {
        typed
            .as_deref()
            .filter(|v| !v.trim().is_empty())
            .map(esc)
            .or_else(|| resolved.map(|d| d.to_string()))
            .unwrap_or_default()
    };
    let mut filters = format!(
        "<label>From <input type=\"date\" name=\"from\" value=\"{}\"></label>\n\
         <label>To <input type=\"date\" name=\"to\" value=\"{}\"></label>\n",
        day(&params.from, period.map(|p| p.from)),
        day(&params.to, period.map(|p| p.to))
    );
    if principal.role != ActorRole::Customer {
        let _ = writeln!(
            filters,
            "<label>Org <input name=\"org_id\" value=\"{}\" placeholder=\"all\" size=\"10\"></label>",
            value(&params.org_id)
        );
    }
    if principal.sees_everything() {
        let _ = writeln!(
            filters,
            "<label>Partner <input name=\"partner_id\" value=\"{}\" placeholder=\"all\" size=\"10\"></label>",
            value(&params.partner_id)
        );
    }
    let src = if query.is_empty() {
        "/dashboard/panels".to_string()
    } else {
        format!("/dashboard/panels?{query}")
    };
    format!(
        "{}<body>\n<header class=\"top\">\n<h1>subdesk <span>dashboard</span></h1>\n\
         <p class=\"who\">Signed in as <strong>{}</strong> ({})</p>\n\
         <form method=\"post\" action=\"/dashboard/sign-out\"><button type=\"submit\" \
         class=\"quiet\">Sign out</button></form>\n</header>\n<main>\n\
         <form class=\"filters\" method=\"get\" action=\"/dashboard\" aria-label=\"Filters\">\n\
         {filters}<button type=\"submit\">Apply</button>\n</form>\n\
         <p class=\"status\" id=\"refresh-status\" role=\"status\" aria-live=\"polite\">\
         Refreshes every 10 seconds.</p>\n\
         <div id=\"panels\" data-src=\"{}\">\n{panels}</div>\n</main>\n</body>\n</html>\n",
        head("subdesk dashboard"),
        esc(&principal.user),
        scope(principal),
        esc(&src),
    )
}

pub fn message(text: &str) -> String {
    format!("<p class=\"notice\" role=\"alert\">{}</p>\n", esc(text))
}

fn refusal(what: &str, error: &ApiError) -> String {
    let why = match error {
        ApiError::Forbidden(why) => why.clone(),
        ApiError::NotFound(_) => "the filter names an org or partner outside your scope".into(),
        ApiError::Unprocessable { detail, .. } | ApiError::BadRequest { detail, .. } => {
            detail.clone()
        }
        _ => "the reports are unavailable right now; this page retries by itself".into(),
    };
    format!(
        "<p class=\"notice\" role=\"alert\">No {what}: {}.</p>\n",
        esc(&why)
    )
}

struct Kpi {
    name: &'static str,
    label: &'static str,
    value: String,
    note: String,
}

fn kpis(data: &Data) -> String {
    let mut tiles = Vec::new();
    if let Ok(cases) = &data.cases {
        tiles.push(Kpi {
            name: "open-cases",
            label: "Open cases",
            value: cases.open.total.to_string(),
            note: "now".into(),
        });
        tiles.push(Kpi {
            name: "opened",
            label: "Cases opened",
            value: cases.totals.opened.to_string(),
            note: "in the period".into(),
        });
        tiles.push(Kpi {
            name: "auto-resolved",
            label: "Auto-resolved",
            value: cases.totals.auto_resolved.to_string(),
            note: "in the period".into(),
        });
    }
    if let Ok(sla) = &data.sla {
        tiles.push(Kpi {
            name: "sla-attainment",
            label: "First-response SLA",
            value: ratio(sla.overall.attainment),
            note: format!("{} met, {} breached", sla.overall.met, sla.overall.breached),
        });
        tiles.push(Kpi {
            name: "median-first-response",
            label: "Median first response",
            value: duration(sla.overall.median_first_response_seconds),
            note: format!("{} answered", sla.overall.responded),
        });
        tiles.push(Kpi {
            name: "median-resolution",
            label: "Median resolution",
            value: duration(sla.overall.median_resolution_seconds),
            note: format!("{} resolved", sla.overall.resolved),
        });
    }
    if let Ok(subs) = &data.subscriptions {
        tiles.push(Kpi {
            name: "subscriptions",
            label: "Subscriptions in force",
            value: subs.active.subscriptions.to_string(),
            note: format!("{} seats", subs.active.seats),
        });
        tiles.push(Kpi {
            name: "renewals-due",
            label: "Renewals due",
            value: subs.renewals_due.subscriptions.to_string(),
            note: format!("next {RENEWAL_WINDOW_DAYS} days"),
        });
    }
    let mut html = String::from("<section class=\"kpis\" aria-label=\"Key figures\">\n<dl>\n");
    for tile in tiles {
        let _ = writeln!(
            html,
            "<div class=\"kpi\"><dt>{}</dt><dd data-kpi=\"{}\">{}</dd><dd class=\"note\">{}</dd></div>",
            esc(tile.label),
            tile.name,
            esc(&tile.value),
            esc(&tile.note)
        );
    }
    html.push_str("</dl>\n</section>\n");
    html
}

/// A panel: a heading, a chart, and its table.
fn panel(id: &str, title: &str, note: &str, chart: &str, table: &str) -> String {
    format!(
        "<section class=\"panel\" id=\"{id}\" aria-labelledby=\"{id}-title\">\n\
         <h2 id=\"{id}-title\">{}</h2>\n<p class=\"note\">{}</p>\n\
         <figure>\n{chart}\n</figure>\n<div class=\"table\">\n{table}</div>\n</section>\n",
        esc(title),
        esc(note)
    )
}

/// A long table behind a disclosure, so panels stay comparable in height.
fn folded(summary: &str, table: &str) -> String {
    format!(
        "<details>\n<summary>{}</summary>\n{table}</details>\n",
        esc(summary)
    )
}

/// A table: caption, column heads, rows of cells (the first cell of a row heads it).
fn table(caption: &str, columns: &[&str], rows: &[Vec<String>]) -> String {
    let mut html = format!("<table>\n<caption>{}</caption>\n<thead><tr>", esc(caption));
    for column in columns {
        let _ = write!(html, "<th scope=\"col\">{}</th>", esc(column));
    }
    html.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        html.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            if i == 0 {
                let _ = write!(html, "<th scope=\"row\">{}</th>", esc(cell));
            } else {
                let _ = write!(html, "<td>{}</td>", esc(cell));
            }
        }
        html.push_str("</tr>\n");
    }
    if rows.is_empty() {
        let _ = writeln!(
            html,
            "<tr><td colspan=\"{}\" class=\"empty\">Nothing in this period.</td></tr>",
            columns.len()
        );
    }
    html.push_str("</tbody>\n</table>\n");
    html
}

fn status_name(status: &str) -> &str {
    match status {
        "waiting_for_customer" => "waiting for customer",
        other => other,
    }
}

fn case_panels(cases: &CasesReport) -> Vec<String> {
    let mut html = Vec::new();
    let priorities: Vec<String> = (1..=4).map(|p| format!("P{p}")).collect();
    let statuses = ["open", "investigating", "waiting_for_customer"];
    let colors = [charts::BLUE, charts::ORANGE, charts::PURPLE];
    let series: Vec<Series> = statuses
        .iter()
        .zip(colors)
        .map(|(status, color)| {
            Series::new(
                status_name(status),
                color,
                (1..=4)
                    .map(|p| cases.open.count(status, p) as f64)
                    .collect(),
            )
        })
        .collect();
    let chart = charts::bars(&Bars {
        title: "Open cases by priority, stacked by status",
        categories: &priorities,
        series: &series,
        y_desc: "cases",
        format: charts::whole,
        targets: None,
        y_floor: 4.0,
    });
    let mut rows: Vec<Vec<String>> = statuses
        .iter()
        .map(|status| {
            let mut row = vec![status_name(status).to_string()];
            let counts: Vec<i64> = (1..=4).map(|p| cases.open.count(status, p)).collect();
            row.extend(counts.iter().map(i64::to_string));
            row.push(counts.iter().sum::<i64>().to_string());
            row
        })
        .collect();
    let mut total = vec!["all open".to_string()];
    total.extend((1..=4).map(|p| {
        statuses
            .iter()
            .map(|s| cases.open.count(s, p))
            .sum::<i64>()
            .to_string()
    }));
    total.push(cases.open.total.to_string());
    rows.push(total);
    html.push(panel(
        "open-cases",
        "Open cases by status and priority",
        "Cases not resolved or closed, now.",
        &chart,
        &table(
            "Open cases",
            &["Status", "P1", "P2", "P3", "P4", "Total"],
            &rows,
        ),
    ));

    let days: Vec<String> = cases
        .per_day
        .iter()
        .map(|d| d.day.format("%b %-d").to_string())
        .collect();
    let chart = charts::lines(
        "Cases opened, resolved and auto-resolved per day",
        &days,
        &[
            Series::new(
                "opened",
                charts::BLUE,
                cases.per_day.iter().map(|d| d.opened as f64).collect(),
            ),
            Series::new(
                "resolved",
                charts::GREEN,
                cases.per_day.iter().map(|d| d.resolved as f64).collect(),
            ),
            Series::new(
                "auto-resolved",
                charts::VERMILION,
                cases
                    .per_day
                    .iter()
                    .map(|d| d.auto_resolved as f64)
                    .collect(),
            ),
        ],
        "cases",
    );
    let rows: Vec<Vec<String>> = cases
        .per_day
        .iter()
        .filter(|d| d.opened + d.resolved + d.auto_resolved > 0)
        .map(|d| {
            vec![
                d.day.to_string(),
                d.opened.to_string(),
                d.resolved.to_string(),
                d.auto_resolved.to_string(),
            ]
        })
        .collect();
    let active_days = rows.len();
    let mut days_table = table(
        "Period total",
        &["", "Opened", "Resolved", "Auto-resolved"],
        &[vec![
            "all days".into(),
            cases.totals.opened.to_string(),
            cases.totals.resolved.to_string(),
            cases.totals.auto_resolved.to_string(),
        ]],
    );
    days_table.push_str(&folded(
        &format!("Day by day ({active_days} days with activity)"),
        &table(
            "Days with case activity",
            &["Day", "Opened", "Resolved", "Auto-resolved"],
            &rows,
        ),
    ));
    html.push(panel(
        "per-day",
        "Cases per day",
        &format!(
            "{} to {}. Resolutions include automatic ones (after waiting for the customer).",
            cases.period.from, cases.period.to
        ),
        &chart,
        &days_table,
    ));

    let top: Vec<_> = cases.by_product.iter().take(10).collect();
    let products: Vec<String> = top.iter().map(|p| p.product.clone()).collect();
    let chart = charts::bars(&Bars {
        title: "Cases opened per product",
        categories: &products,
        series: &[Series::new(
            "opened",
            charts::SKY,
            top.iter().map(|p| p.opened as f64).collect(),
        )],
        y_desc: "cases opened",
        format: charts::whole,
        targets: None,
        y_floor: 4.0,
    });
    let rows: Vec<Vec<String>> = cases
        .by_product
        .iter()
        .map(|p| {
            vec![
                p.product.clone(),
                p.opened.to_string(),
                p.resolved.to_string(),
                p.auto_resolved.to_string(),
            ]
        })
        .collect();
    html.push(panel(
        "products",
        "Cases per product",
        "Cases opened and resolved in the period, by product (the chart shows the first ten).",
        &chart,
        &table(
            "Cases per product",
            &["Product", "Opened", "Resolved", "Auto-resolved"],
            &rows,
        ),
    ));
    html
}

fn priority_name(row: &SlaRow) -> String {
    row.priority
        .map_or_else(|| "all".to_string(), |p| format!("P{p}"))
}

fn sla_panels(sla: &SlaReport) -> Vec<String> {
    let priorities: Vec<String> = (1..=4).map(|p| format!("P{p}")).collect();
    let all_rows = || sla.priorities.iter().chain([&sla.overall]);
    let mut html = Vec::new();

    let chart = charts::bars(&Bars {
        title: "First-response SLA attainment by priority",
        categories: &priorities,
        series: &[Series::new(
            "attainment",
            charts::GREEN,
            sla.priorities
                .iter()
                .map(|r| r.attainment.unwrap_or(0.0) * 100.0)
                .collect(),
        )],
        y_desc: "answered within target (%)",
        format: charts::percent,
        targets: None,
        y_floor: 100.0,
    });
    let rows: Vec<Vec<String>> = all_rows()
        .map(|r| {
            vec![
                priority_name(r),
                r.opened.to_string(),
                r.met.to_string(),
                r.breached.to_string(),
                r.awaiting_response.to_string(),
                ratio(r.attainment),
            ]
        })
        .collect();
    html.push(panel(
        "sla",
        "First-response SLA attainment",
        &format!(
            "Cases opened {} to {}, at the priority they are worked at now. Met: answered within \
             the target; breached: answered late, or unanswered past the due time; awaiting: \
             not due yet.",
            sla.period.from, sla.period.to
        ),
        &chart,
        &table(
            "First-response SLA by priority",
            &[
                "Priority",
                "Opened",
                "Met",
                "Breached",
                "Awaiting",
                "Attainment",
            ],
            &rows,
        ),
    ));

    let hours = |s: Option<f64>| s.unwrap_or(0.0) / 3600.0;
    let targets: Vec<f64> = sla
        .priorities
        .iter()
        .map(|r| hours(r.target_seconds.map(|s| s as f64)))
        .collect();
    let chart = charts::bars(&Bars {
        title: "Median time to first response by priority, against the target",
        categories: &priorities,
        series: &[Series::new(
            "median first response",
            charts::BLUE,
            sla.priorities
                .iter()
                .map(|r| hours(r.median_first_response_seconds))
                .collect(),
        )],
        y_desc: "hours (dashed line: target)",
        format: charts::hours,
        targets: Some(&targets),
        y_floor: 1.0,
    });
    let rows: Vec<Vec<String>> = all_rows()
        .map(|r| {
            vec![
                priority_name(r),
                duration(r.target_seconds.map(|s| s as f64)),
                r.responded.to_string(),
                duration(r.median_first_response_seconds),
            ]
        })
        .collect();
    html.push(panel(
        "first-response",
        "Median time to first response",
        "From the opening to support's first public answer, for the cases above that were answered.",
        &chart,
        &table(
            "Time to first response by priority",
            &["Priority", "Target", "Answered", "Median"],
            &rows,
        ),
    ));

    let chart = charts::bars(&Bars {
        title: "Median time to resolution by priority",
        categories: &priorities,
        series: &[Series::new(
            "median resolution",
            charts::PURPLE,
            sla.priorities
                .iter()
                .map(|r| hours(r.median_resolution_seconds))
                .collect(),
        )],
        y_desc: "hours",
        format: charts::hours,
        targets: None,
        y_floor: 1.0,
    });
    let rows: Vec<Vec<String>> = all_rows()
        .map(|r| {
            vec![
                priority_name(r),
                r.resolved.to_string(),
                duration(r.median_resolution_seconds),
            ]
        })
        .collect();
    html.push(panel(
        "resolution",
        "Median time to resolution",
        &format!(
            "From the opening to the latest resolution, for cases resolved {} to {} that stayed \
             resolved (automatic resolutions included).",
            sla.period.from, sla.period.to
        ),
        &chart,
        &table(
            "Time to resolution by priority",
            &["Priority", "Resolved", "Median"],
            &rows,
        ),
    ));
    html
}

/// `2026-03` as `Mar`; the first month and every January also name the year (`Jan 26`).
fn month_label(month: &str, first: bool) -> String {
    use chrono::Datelike;
    chrono::NaiveDate::parse_from_str(&format!("{month}-01"), "%Y-%m-%d").map_or_else(
        |_| month.to_string(),
        |d| {
            if first || d.month() == 1 {
                d.format("%b %y").to_string()
            } else {
                d.format("%b").to_string()
            }
        },
    )
}

fn subscription_panels(subs: &SubscriptionsReport) -> String {
    let mut html = String::new();
    let top: Vec<_> = subs.active.by_product.iter().take(10).collect();
    let products: Vec<String> = top.iter().map(|g| g.key.clone()).collect();
    let chart = charts::bars(&Bars {
        title: "Seats in force by product",
        categories: &products,
        series: &[Series::new(
            "seats",
            charts::BLUE,
            top.iter().map(|g| g.seats as f64).collect(),
        )],
        y_desc: "seats",
        format: charts::whole,
        targets: None,
        y_floor: 10.0,
    });
    let rows: Vec<Vec<String>> = subs
        .active
        .rows
        .iter()
        .map(|r| {
            vec![
                r.product.clone(),
                r.plan.clone(),
                r.partner_id.clone().unwrap_or_else(|| "direct".into()),
                r.subscriptions.to_string(),
                r.seats.to_string(),
            ]
        })
        .collect();
    let mut tables = table(
        "Subscriptions in force by product, plan and partner",
        &["Product", "Plan", "Partner", "Subscriptions", "Seats"],
        &rows,
    );
    for (caption, head, groups) in [
        ("By plan", "Plan", &subs.active.by_plan),
        ("By partner", "Partner", &subs.active.by_partner),
    ] {
        let rows: Vec<Vec<String>> = groups
            .iter()
            .map(|g| {
                vec![
                    g.key.clone(),
                    g.subscriptions.to_string(),
                    g.seats.to_string(),
                ]
            })
            .collect();
        tables.push_str(&table(caption, &[head, "Subscriptions", "Seats"], &rows));
    }
    html.push_str(&panel(
        "subscriptions",
        "Subscriptions and seats in force",
        &format!(
            "Active and non-renewing subscriptions now: {} subscriptions, {} seats.",
            subs.active.subscriptions, subs.active.seats
        ),
        &chart,
        &tables,
    ));

    let months: Vec<String> = subs
        .cancellations_per_month
        .iter()
        .map(|m| m.month.clone())
        .collect();
    let labels: Vec<String> = months
        .iter()
        .enumerate()
        .map(|(i, m)| month_label(m, i == 0))
        .collect();
    let chart = charts::bars(&Bars {
        title: "Cancellations per month",
        categories: &labels,
        series: &[Series::new(
            "cancellations",
            charts::VERMILION,
            subs.cancellations_per_month
                .iter()
                .map(|m| m.cancellations as f64)
                .collect(),
        )],
        y_desc: "cancellations",
        format: charts::whole,
        targets: None,
        y_floor: 4.0,
    });
    let rows: Vec<Vec<String>> = subs
        .cancellations_per_month
        .iter()
        .map(|m| {
            vec![
                m.month.clone(),
                m.cancellations.to_string(),
                m.seats.to_string(),
            ]
        })
        .collect();
    html.push_str(&panel(
        "cancellations",
        "Cancellations per month",
        &format!(
            "Cancellations that took effect, {} to {}.",
            subs.period.from, subs.period.to
        ),
        &chart,
        &table(
            "Cancellations per month",
            &["Month", "Cancellations", "Seats"],
            &rows,
        ),
    ));

    let due = &subs.renewals_due;
    let rows: Vec<Vec<String>> = due
        .items
        .iter()
        .map(|r| {
            vec![
                r.term_end.format("%Y-%m-%d").to_string(),
                r.org_id.clone(),
                r.product.clone(),
                r.plan.clone(),
                r.partner_id.clone().unwrap_or_else(|| "direct".into()),
                r.seats.to_string(),
                if r.auto_renew {
                    "renews".into()
                } else {
                    "expires unless renewed".into()
                },
            ]
        })
        .collect();
    let _ = write!(
        html,
        "<section class=\"panel wide\" id=\"renewals\" aria-labelledby=\"renewals-title\">\n\
         <h2 id=\"renewals-title\">Renewals due in the next {} days</h2>\n\
         <p class=\"note\">{} active subscriptions, {} seats, bill date by {}; {} renew \
         automatically.</p>\n<div class=\"table\">\n{}</div>\n</section>\n",
        due.window_days,
        due.subscriptions,
        due.seats,
        due.until.format("%Y-%m-%d"),
        due.auto_renew,
        table(
            "Renewals due",
            &[
                "Bill date",
                "Org",
                "Product",
                "Plan",
                "Partner",
                "Seats",
                "Auto-renew"
            ],
            &rows
        )
    );
    html
}

/// Everything below the filters: key figures, then the panels the principal may see.
pub fn panels(principal: &Principal, data: &Data) -> String {
    let mut html = kpis(data);
    html.push_str("<div class=\"panels\">\n");
    // Two columns: open cases and their flow, the SLA, resolution next to products.
    let cases = match &data.cases {
        Ok(cases) => case_panels(cases),
        Err(error) => vec![refusal("case reports", error)],
    };
    let sla = match &data.sla {
        Ok(sla) => sla_panels(sla),
        Err(error) if data.cases.is_ok() => vec![refusal("SLA report", error)],
        Err(_) => Vec::new(),
    };
    let mut cases = cases.into_iter();
    html.extend(cases.by_ref().take(2));
    html.extend(sla);
    html.extend(cases);
    match &data.subscriptions {
        Ok(subs) => html.push_str(&subscription_panels(subs)),
        Err(error) => html.push_str(&refusal("subscription reports", error)),
    }
    html.push_str("</div>\n");
    let generated = data
        .cases
        .as_ref()
        .map(|c| c.generated_at)
        .or_else(|_| data.subscriptions.as_ref().map(|s| s.generated_at));
    if let Ok(at) = generated {
        let _ = writeln!(
            html,
            "<p class=\"status\">Figures as of {} UTC for {}.</p>",
            at.format("%Y-%m-%d %H:%M:%S"),
            esc(&principal.user)
        );
    }
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_say_them() {
        assert_eq!(duration(Some(1800.0)), "30 min");
        assert_eq!(duration(Some(3600.0)), "1 h");
        assert_eq!(duration(Some(5400.0)), "1 h 30 min");
        assert_eq!(duration(Some(2.0 * 86400.0 + 4.0 * 3600.0)), "2 d 4 h");
        assert_eq!(duration(None), "–");
    }

    #[test]
    fn text_is_escaped_for_html() {
        assert_eq!(
            esc("<b onclick=\"x\">'&'</b>"),
            "&lt;b onclick=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/b&gt;"
        );
    }
}
