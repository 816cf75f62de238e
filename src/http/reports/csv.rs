//! One table of a report as CSV (RFC 4180).

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

use super::*;

/// A CSV document (RFC 4180: comma-separated, CRLF line ends, fields quoted when needed).
pub(super) struct Csv {
    text: String,
}

impl Csv {
    fn new(header: &[&str]) -> Self {
        let mut csv = Self {
            text: String::new(),
        };
        csv.row(header.iter().map(|h| h.to_string()));
        csv
    }

    fn row(&mut self, fields: impl IntoIterator<Item = String>) {
        for (i, field) in fields.into_iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            if field.contains([',', '"', '\n', '\r']) {
                self.text.push('"');
                self.text.push_str(&field.replace('"', "\"\""));
                self.text.push('"');
            } else {
                self.text.push_str(&field);
            }
        }
        self.text.push_str("\r\n");
    }
}

/// A text field as a spreadsheet should show it: one that starts like a formula is prefixed
/// with `'`, so that opening the file never evaluates what a customer typed.
fn text(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_string()
    }
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

fn unknown_table(table: &str, known: &[&str]) -> ApiError {
    ApiError::Unprocessable {
        code: "invalid_table",
        detail: format!(
            "unknown table `{table}`; this report has {}",
            known
                .iter()
                .map(|t| format!("`{t}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub const CASE_TABLES: [&str; 4] = ["open", "per_day", "by_product", "by_request_type"];
pub const SLA_TABLES: [&str; 1] = ["priorities"];
pub const SUBSCRIPTION_TABLES: [&str; 3] = ["active", "renewals", "cancellations"];

pub(super) fn cases_csv(report: &CasesReport, table: &str) -> Result<Csv, ApiError> {
    Ok(match table {
        "open" => {
            let mut csv = Csv::new(&["status", "priority", "cases"]);
            for c in &report.open.cells {
                csv.row([
                    c.status.clone(),
                    c.priority.to_string(),
                    c.cases.to_string(),
                ]);
            }
            csv
        }
        "per_day" => {
            let mut csv = Csv::new(&["day", "opened", "resolved", "auto_resolved"]);
            for d in &report.per_day {
                csv.row([
                    d.day.to_string(),
                    d.opened.to_string(),
                    d.resolved.to_string(),
                    d.auto_resolved.to_string(),
                ]);
            }
            csv
        }
        "by_product" => {
            let mut csv = Csv::new(&["product", "opened", "resolved", "auto_resolved"]);
            for p in &report.by_product {
                csv.row([
                    text(&p.product),
                    p.opened.to_string(),
                    p.resolved.to_string(),
                    p.auto_resolved.to_string(),
                ]);
            }
            csv
        }
        "by_request_type" => {
            let mut csv = Csv::new(&["request_type", "opened"]);
            for t in &report.by_request_type {
                csv.row([text(&t.request_type), t.opened.to_string()]);
            }
            csv
        }
        other => return Err(unknown_table(other, &CASE_TABLES)),
    })
}

pub(super) fn sla_csv(report: &SlaReport, table: &str) -> Result<Csv, ApiError> {
    if table != SLA_TABLES[0] {
        return Err(unknown_table(table, &SLA_TABLES));
    }
    let mut csv = Csv::new(&[
        "priority",
        "target_seconds",
        "opened",
        "responded",
        "met",
        "breached",
        "awaiting_response",
        "attainment",
        "median_first_response_seconds",
        "resolved",
        "median_resolution_seconds",
        "next_replies_met",
        "next_replies_breached",
        "next_reply_attainment",
        "resolution_target_days",
        "resolutions_met",
        "resolutions_breached",
        "resolution_attainment",
        "median_resolution_business_seconds",
    ]);
    for row in report.priorities.iter().chain([&report.overall]) {
        csv.row([
            row.priority
                .map_or_else(|| "all".to_string(), |p| p.to_string()),
            opt(row.target_seconds),
            row.opened.to_string(),
            row.responded.to_string(),
            row.met.to_string(),
            row.breached.to_string(),
            row.awaiting_response.to_string(),
            opt(row.attainment.map(|a| format!("{a:.4}"))),
            opt(row.median_first_response_seconds),
            row.resolved.to_string(),
            opt(row.median_resolution_seconds),
            row.next_replies_met.to_string(),
            row.next_replies_breached.to_string(),
            opt(row.next_reply_attainment.map(|a| format!("{a:.4}"))),
            opt(row.resolution_target_days),
            row.resolutions_met.to_string(),
            row.resolutions_breached.to_string(),
            opt(row.resolution_attainment.map(|a| format!("{a:.4}"))),
            opt(row.median_resolution_business_seconds),
        ]);
    }
    Ok(csv)
}

pub(super) fn subscriptions_csv(
    report: &SubscriptionsReport,
    table: &str,
) -> Result<Csv, ApiError> {
    Ok(match table {
        "active" => {
            let mut csv = Csv::new(&["product", "plan", "partner_id", "subscriptions", "seats"]);
            for r in &report.active.rows {
                csv.row([
                    text(&r.product),
                    text(&r.plan),
                    opt(r.partner_id.as_deref().map(text)),
                    r.subscriptions.to_string(),
                    r.seats.to_string(),
                ]);
            }
            csv
        }
        "renewals" => {
            let mut csv = Csv::new(&[
                "subscription_id",
                "org_id",
                "product",
                "plan",
                "partner_id",
                "seats",
                "term_end",
                "auto_renew",
            ]);
            for r in &report.renewals_due.items {
                csv.row([
                    r.subscription_id.to_string(),
                    text(&r.org_id),
                    text(&r.product),
                    text(&r.plan),
                    opt(r.partner_id.as_deref().map(text)),
                    r.seats.to_string(),
                    r.term_end
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    r.auto_renew.to_string(),
                ]);
            }
            csv
        }
        "cancellations" => {
            let mut csv = Csv::new(&["month", "cancellations", "seats"]);
            for m in &report.cancellations_per_month {
                csv.row([
                    m.month.clone(),
                    m.cancellations.to_string(),
                    m.seats.to_string(),
                ]);
            }
            csv
        }
        other => return Err(unknown_table(other, &SUBSCRIPTION_TABLES)),
    })
}

pub(super) fn csv_response(csv: Csv, report: &str, table: &str, period: Period) -> Response {
    let file = format!(
        "attachment; filename=\"subdesk-{report}-{table}-{}-{}.csv\"",
        period.from, period.to
    );
    let mut response = csv.text.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&file) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_when_needed_and_formulas_are_defused() {
        let mut csv = Csv::new(&["product", "cases"]);
        csv.row([text("jira, \"cloud\""), "3".into()]);
        csv.row([text("=HYPERLINK(\"x\")"), "1".into()]);
        assert_eq!(
            csv.text,
            "product,cases\r\n\"jira, \"\"cloud\"\"\",3\r\n\"'=HYPERLINK(\"\"x\"\")\",1\r\n"
        );
    }
}
