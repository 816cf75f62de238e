//! What the panels show, built from the reports: titles, notes, charts and tables as values.
//! The markup is in `templates/dashboard/panels.html`, which escapes every one of them.

use super::charts::{self, Bars, Chart, Series};
use super::format::{duration, ratio};
use crate::read::reports::{CasesReport, SlaReport, SlaRow, SubscriptionsReport};

/// A table: caption, column heads, rows of cells (the first cell of a row heads it).
pub struct Table {
    pub caption: &'static str,
    pub columns: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
}

fn table(caption: &'static str, columns: &[&'static str], rows: Vec<Vec<String>>) -> Table {
    Table {
        caption,
        columns: columns.to_vec(),
        rows,
    }
}

/// A long table behind a disclosure, so panels stay comparable in height.
pub struct Folded {
    pub summary: String,
    pub table: Table,
}

/// A panel: a heading, a note, a chart (most have one), and its tables.
pub struct Panel {
    pub id: &'static str,
    pub title: String,
    pub note: String,
    /// Across both columns.
    pub wide: bool,
    pub chart: Option<Chart>,
    pub tables: Vec<Table>,
    pub folded: Option<Folded>,
}

fn panel(
    id: &'static str,
    title: &str,
    note: impl Into<String>,
    chart: Chart,
    tables: Vec<Table>,
) -> Panel {
    Panel {
        id,
        title: title.to_string(),
        note: note.into(),
        wide: false,
        chart: Some(chart),
        tables,
        folded: None,
    }
}

/// One place in the grid of panels: a panel, or why a report is missing.
pub enum Item {
    Panel(Box<Panel>),
    /// `No {what}: {why}.`
    Refusal(&'static str, String),
}

impl From<Panel> for Item {
    fn from(panel: Panel) -> Self {
        Self::Panel(Box::new(panel))
    }
}

fn status_name(status: &str) -> &str {
    match status {
        "waiting_for_customer" => "waiting for customer",
        other => other,
    }
}

pub fn case_panels(cases: &CasesReport) -> Vec<Panel> {
    let mut panels = Vec::new();
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
    let chart = charts::bars(&Bars::counts(
        "Open cases by priority, stacked by status",
        &priorities,
        &series,
        "cases",
        4.0,
    ));
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
    panels.push(panel(
        "open-cases",
        "Open cases by status and priority",
        "Cases not resolved or closed, now.",
        chart,
        vec![table(
            "Open cases",
            &["Status", "P1", "P2", "P3", "P4", "Total"],
            rows,
        )],
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
    let total = table(
        "Period total",
        &["", "Opened", "Resolved", "Auto-resolved"],
        vec![vec![
            "all days".into(),
            cases.totals.opened.to_string(),
            cases.totals.resolved.to_string(),
            cases.totals.auto_resolved.to_string(),
        ]],
    );
    let mut per_day = panel(
        "per-day",
        "Cases per day",
        format!(
            "{} to {}. Resolutions include automatic ones (after waiting for the customer).",
            cases.period.from, cases.period.to
        ),
        chart,
        vec![total],
    );
    per_day.folded = Some(Folded {
        summary: format!("Day by day ({active_days} days with activity)"),
        table: table(
            "Days with case activity",
            &["Day", "Opened", "Resolved", "Auto-resolved"],
            rows,
        ),
    });
    panels.push(per_day);

    let (products, opened) = top_ten(&cases.by_product, |p| (&p.product, p.opened));
    let opened = [Series::new("opened", charts::SKY, opened)];
    let chart = charts::bars(&Bars::counts(
        "Cases opened per product",
        &products,
        &opened,
        "cases opened",
        4.0,
    ));
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
    panels.push(panel(
        "products",
        "Cases per product",
        "Cases opened and resolved in the period, by product (the chart shows the first ten).",
        chart,
        vec![table(
            "Cases per product",
            &["Product", "Opened", "Resolved", "Auto-resolved"],
            rows,
        )],
    ));
    panels
}

fn priority_name(row: &SlaRow) -> String {
    row.priority
        .map_or_else(|| "all".to_string(), |p| format!("P{p}"))
}

pub fn sla_panels(sla: &SlaReport) -> Vec<Panel> {
    let priorities: Vec<String> = (1..=4).map(|p| format!("P{p}")).collect();
    let all_rows = || sla.priorities.iter().chain([&sla.overall]);
    let mut panels = Vec::new();

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
    panels.push(panel(
        "sla",
        "First-response SLA attainment",
        format!(
            "Cases opened {} to {}, at the priority they are worked at now. Met: answered \
                 within the target; breached: answered late, or unanswered past the due time; \
                 awaiting: not due yet.",
            sla.period.from, sla.period.to
        ),
        chart,
        vec![table(
            "First-response SLA by priority",
            &[
                "Priority",
                "Opened",
                "Met",
                "Breached",
                "Awaiting",
                "Attainment",
            ],
            rows,
        )],
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
    panels.push(panel(
        "first-response",
        "Median time to first response",
        "From the opening to support's first public answer, for the cases above that were \
             answered.",
        chart,
        vec![table(
            "Time to first response by priority",
            &["Priority", "Target", "Answered", "Median"],
            rows,
        )],
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
    panels.push(panel(
        "resolution",
        "Median time to resolution",
        format!(
            "From the opening to the latest resolution, for cases resolved {} to {} that \
                 stayed resolved (automatic resolutions included).",
            sla.period.from, sla.period.to
        ),
        chart,
        vec![table(
            "Time to resolution by priority",
            &["Priority", "Resolved", "Median"],
            rows,
        )],
    ));
    panels
}

/// The names and figures of the first ten of `items` (the report sorts them, largest first),
/// for a chart that shows no more.
fn top_ten<T>(items: &[T], of: impl Fn(&T) -> (&String, i64)) -> (Vec<String>, Vec<f64>) {
    items
        .iter()
        .take(10)
        .map(|item| {
            let (name, figure) = of(item);
            (name.clone(), figure as f64)
        })
        .unzip()
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

pub fn subscription_panels(subs: &SubscriptionsReport) -> Vec<Panel> {
    let mut panels = Vec::new();
    let (products, seats) = top_ten(&subs.active.by_product, |g| (&g.key, g.seats));
    let seats = [Series::new("seats", charts::BLUE, seats)];
    let chart = charts::bars(&Bars::counts(
        "Seats in force by product",
        &products,
        &seats,
        "seats",
        10.0,
    ));
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
    let mut tables = vec![table(
        "Subscriptions in force by product, plan and partner",
        &["Product", "Plan", "Partner", "Subscriptions", "Seats"],
        rows,
    )];
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
        tables.push(table(caption, &[head, "Subscriptions", "Seats"], rows));
    }
    panels.push(panel(
        "subscriptions",
        "Subscriptions and seats in force",
        format!(
            "Active and non-renewing subscriptions now: {} subscriptions, {} seats.",
            subs.active.subscriptions, subs.active.seats
        ),
        chart,
        tables,
    ));

    let labels: Vec<String> = subs
        .cancellations_per_month
        .iter()
        .enumerate()
        .map(|(i, m)| month_label(&m.month, i == 0))
        .collect();
    let chart = charts::bars(&Bars::counts(
        "Cancellations per month",
        &labels,
        &[Series::new(
            "cancellations",
            charts::VERMILION,
            subs.cancellations_per_month
                .iter()
                .map(|m| m.cancellations as f64)
                .collect(),
        )],
        "cancellations",
        4.0,
    ));
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
    panels.push(panel(
        "cancellations",
        "Cancellations per month",
        format!(
            "Cancellations that took effect, {} to {}.",
            subs.period.from, subs.period.to
        ),
        chart,
        vec![table(
            "Cancellations per month",
            &["Month", "Cancellations", "Seats"],
            rows,
        )],
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
    panels.push(Panel {
        id: "renewals",
        title: format!("Renewals due in the next {} days", due.window_days),
        note: format!(
            "{} active subscriptions, {} seats, bill date by {}; {} renew automatically.",
            due.subscriptions,
            due.seats,
            due.until.format("%Y-%m-%d"),
            due.auto_renew
        ),
        wide: true,
        chart: None,
        tables: vec![table(
            "Renewals due",
            &[
                "Bill date",
                "Org",
                "Product",
                "Plan",
                "Partner",
                "Seats",
                "Auto-renew",
            ],
            rows,
        )],
        folded: None,
    });
    panels
}
