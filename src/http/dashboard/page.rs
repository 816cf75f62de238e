//! The dashboard's HTML, from the askama templates in `templates/dashboard/`: semantic markup
//! (header, main, sections with headings, figures with captions, tables with captions and
//! header cells). Key figures carry `data-kpi` names so that tests and scripts can find them.
//!
//! The templates escape every value they are given. Two kinds of value go in as they are,
//! both marked with askama's `HtmlSafe` and neither constructible from a string elsewhere: an
//! [`Svg`](super::charts::Svg) drawn by [`charts`](super::charts), and the [`Markup`] of a
//! template rendered here (the panels inside the page). No template uses `|safe`.

use std::fmt;

use askama::Template;
use subdesk_aggregates::ActorRole;

use super::charts::Chart;
use super::format::{duration, ratio};
use super::view::{self, Item};
use super::{Data, PageParams};
use crate::auth::Principal;
use crate::http::error::ApiError;
use crate::read::reports::{Period, RENEWAL_WINDOW_DAYS};

/// HTML rendered from one of this module's templates: every value in it went through
/// askama's escaping, so it may go into another template, or out as a response, as it is.
#[derive(Debug)]
pub struct Markup(String);

impl Markup {
    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Markup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl askama::filters::HtmlSafe for Markup {}

fn render(template: &impl Template) -> Result<Markup, ApiError> {
    template
        .render()
        .map(Markup)
        .map_err(|error| ApiError::Internal(format!("dashboard template: {error}")))
}

#[derive(Template)]
#[template(path = "dashboard/sign_in.html")]
struct SignIn<'a> {
    error: Option<&'a str>,
}

pub fn sign_in(error: Option<&str>) -> Result<Markup, ApiError> {
    render(&SignIn { error })
}

/// Who the principal is and what the dashboard covers for them.
enum Scope<'a> {
    OrgAdmin(&'a str),
    /// Its customers' cases and the subscriptions it sold.
    Partner(&'a str),
    Everyone(ActorRole),
}

#[derive(Template)]
#[template(path = "dashboard/dashboard.html")]
struct Dashboard<'a> {
    user: &'a str,
    scope: Scope<'a>,
    from: &'a str,
    to: &'a str,
    /// The org and partner filters, where the principal may use them.
    org_id: Option<&'a str>,
    partner_id: Option<&'a str>,
    /// Where the refresh fetches the panels.
    src: String,
    panels: &'a Markup,
}

/// The date as typed, or else the one in force.
fn day<'a>(typed: &'a Option<String>, resolved: &'a str) -> &'a str {
    typed
        .as_deref()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or(resolved)
}

pub fn dashboard(
    principal: &Principal,
    params: &PageParams,
    period: Option<Period>,
    query: &str,
    panels: &Markup,
) -> Result<Markup, ApiError> {
    let scope = match principal.role {
        ActorRole::Customer => Scope::OrgAdmin(principal.org_id.as_deref().unwrap_or("?")),
        ActorRole::Partner => Scope::Partner(principal.partner_id.as_deref().unwrap_or("?")),
        role => Scope::Everyone(role),
    };
    // The date fields show the period in force, the default one included.
    let (from, to) = (
        period.map(|p| p.from.to_string()).unwrap_or_default(),
        period.map(|p| p.to.to_string()).unwrap_or_default(),
    );
    let src = if query.is_empty() {
        "/dashboard/panels".to_string()
    } else {
        format!("/dashboard/panels?{query}")
    };
    render(&Dashboard {
        user: &principal.user,
        scope,
        from: day(&params.from, &from),
        to: day(&params.to, &to),
        org_id: (principal.role != ActorRole::Customer)
            .then(|| params.org_id.as_deref().unwrap_or_default()),
        partner_id: principal
            .sees_everything()
            .then(|| params.partner_id.as_deref().unwrap_or_default()),
        src,
        panels,
    })
}

#[derive(Template)]
#[template(path = "dashboard/message.html")]
struct Message<'a> {
    text: &'a str,
}

pub fn message(text: &str) -> Result<Markup, ApiError> {
    render(&Message { text })
}

/// Why a report is missing, in words for the page.
fn refusal(what: &'static str, error: &ApiError) -> Item {
    let why = match error {
        ApiError::Forbidden(why) => why.clone(),
        ApiError::NotFound(_) => "the filter names an org or partner outside your scope".into(),
        ApiError::Unprocessable { detail, .. } | ApiError::BadRequest { detail, .. } => {
            detail.clone()
        }
        _ => "the reports are unavailable right now; this page retries by itself".into(),
    };
    Item::Refusal(what, why)
}

struct Kpi {
    name: &'static str,
    label: &'static str,
    value: String,
    note: String,
}

fn kpis(data: &Data) -> Vec<Kpi> {
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
        tiles.push(Kpi {
            name: "resolution-sla",
            label: "Resolution SLA",
            value: ratio(sla.overall.resolution_attainment),
            note: format!(
                "median {} of business time, waiting left out",
                duration(sla.overall.median_resolution_business_seconds)
            ),
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
    tiles
}

#[derive(Template)]
#[template(path = "dashboard/panels.html")]
struct Panels<'a> {
    kpis: Vec<Kpi>,
    items: Vec<Item>,
    /// When the figures were read (UTC), if any report was.
    generated: Option<String>,
    user: &'a str,
}

/// Everything below the filters: key figures, then the panels the principal may see.
pub fn panels(principal: &Principal, data: &Data) -> Result<Markup, ApiError> {
    // Two columns: open cases and their flow, the SLA, resolution next to products.
    let cases: Vec<Item> = match &data.cases {
        Ok(cases) => view::case_panels(cases)
            .into_iter()
            .map(Item::from)
            .collect(),
        Err(error) => vec![refusal("case reports", error)],
    };
    let sla: Vec<Item> = match &data.sla {
        Ok(sla) => view::sla_panels(sla).into_iter().map(Item::from).collect(),
        Err(error) if data.cases.is_ok() => vec![refusal("SLA report", error)],
        Err(_) => Vec::new(),
    };
    let mut cases = cases.into_iter();
    let mut items: Vec<Item> = cases.by_ref().take(2).collect();
    items.extend(sla);
    items.extend(cases);
    match &data.subscriptions {
        Ok(subs) => items.extend(view::subscription_panels(subs).into_iter().map(Item::from)),
        Err(error) => items.push(refusal("subscription reports", error)),
    }
    let generated = data
        .cases
        .as_ref()
        .map(|c| c.generated_at)
        .or_else(|_| data.subscriptions.as_ref().map(|s| s.generated_at))
        .ok()
        .map(|at| at.format("%Y-%m-%d %H:%M:%S").to_string());
    render(&Panels {
        kpis: kpis(data),
        items,
        generated,
        user: &principal.user,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_that_could_not_be_drawn_is_named_escaped() {
        let panel = view::Panel {
            id: "flow",
            title: "Flow".into(),
            note: "Per day.".into(),
            wide: false,
            chart: Some(Chart::Missing("<b>flow</b>".into())),
            tables: Vec::new(),
            folded: None,
        };
        let html = render(&Panels {
            kpis: Vec::new(),
            items: vec![panel.into()],
            generated: None,
            user: "ada",
        })
        .expect("rendered")
        .into_string();
        assert!(
            html.contains(
                "<figure>\n<p class=\"chart-missing\">The chart “&#60;b&#62;flow&#60;/b&#62;” \
                 could not be drawn; the table has its numbers.</p>\n</figure>"
            ),
            "{html}"
        );
    }
}
