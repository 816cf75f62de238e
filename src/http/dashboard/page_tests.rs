//! The pages rendered from reports made up here: hostile names and messages come out escaped,
//! and charts are the only markup that reaches the page as it is.

use chrono::{NaiveDate, TimeZone, Utc};
use subdesk_aggregates::ActorRole;
use uuid::Uuid;

use super::page;
use super::{Data, PageParams};
use crate::auth::Principal;
use crate::http::error::ApiError;
use crate::read::reports::{
    ActiveGroup, ActiveRow, ActiveSubscriptions, CaseDay, CaseTotals, CasesReport,
    MonthCancellations, OpenCases, OpenCell, Period, ProductCases, Renewal, RenewalsDue, SlaReport,
    SlaRow, SubscriptionsReport,
};

const HOSTILE: &str = "<script>alert(1)</script>";

fn principal(role: ActorRole, name: &str) -> Principal {
    let mut principal = Principal::system();
    principal.role = role;
    principal.user = format!("{name}@example.test");
    principal.org_id = Some(name.to_string());
    principal.partner_id = Some(format!("p-{name}"));
    principal
}

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 3, d).expect("a day of March")
}

fn period() -> Period {
    Period {
        from: day(1),
        to: day(5),
    }
}

fn sla_row(priority: Option<i16>) -> SlaRow {
    let p = f64::from(priority.unwrap_or(2));
    SlaRow {
        priority,
        target_seconds: priority.map(|p| 3600 * i64::from(p)),
        opened: 4,
        responded: 3,
        met: 2,
        breached: 1,
        awaiting_response: 1,
        attainment: priority.filter(|p| *p != 4).map(|_| 2.0 / 3.0),
        median_first_response_seconds: Some(1800.0 * p),
        resolved: 2,
        median_resolution_seconds: Some(86400.0 * p + 3600.0),
        next_replies_met: 3,
        next_replies_breached: 1,
        next_reply_attainment: Some(0.75),
        resolution_target_days: priority.map(i64::from),
        resolutions_met: 1,
        resolutions_breached: 1,
        resolution_attainment: Some(0.5),
        median_resolution_business_seconds: Some(32400.0 * p),
    }
}

/// Three reports whose names (products, plans, partners, orgs) are `name`-flavoured.
fn data(name: &str) -> Data {
    let at = Utc
        .with_ymd_and_hms(2026, 3, 5, 12, 30, 0)
        .single()
        .expect("a time");
    let statuses = ["open", "investigating", "waiting_for_customer"];
    let cells = statuses
        .iter()
        .flat_map(|s| {
            (1..=4).map(move |p| OpenCell {
                status: (*s).to_string(),
                priority: p,
                cases: i64::from(p) % 3,
            })
        })
        .collect();
    let cases = CasesReport {
        period: period(),
        generated_at: at,
        open: OpenCases { total: 12, cells },
        per_day: (1..=5)
            .map(|d| CaseDay {
                day: day(d),
                opened: i64::from(d % 3),
                resolved: i64::from(d % 2),
                auto_resolved: 0,
            })
            .collect(),
        by_product: vec![
            ProductCases {
                product: format!("jira {name}"),
                opened: 4,
                resolved: 2,
                auto_resolved: 1,
            },
            ProductCases {
                product: "confluence".into(),
                opened: 2,
                resolved: 1,
                auto_resolved: 0,
            },
        ],
        by_request_type: Vec::new(),
        totals: CaseTotals {
            opened: 6,
            resolved: 3,
            auto_resolved: 1,
        },
    };
    let sla = SlaReport {
        period: period(),
        generated_at: at,
        priorities: (1..=4).map(|p| sla_row(Some(p))).collect(),
        overall: sla_row(None),
    };
    let group = |key: String| ActiveGroup {
        key,
        subscriptions: 2,
        seats: 30,
    };
    let subscriptions = SubscriptionsReport {
        period: period(),
        generated_at: at,
        active: ActiveSubscriptions {
            subscriptions: 2,
            seats: 30,
            rows: vec![ActiveRow {
                product: format!("jira {name}"),
                plan: format!("plan {name}"),
                partner_id: None,
                subscriptions: 2,
                seats: 30,
            }],
            by_product: vec![group(format!("jira {name}"))],
            by_plan: vec![group(format!("plan {name}"))],
            by_partner: vec![group("direct".into())],
        },
        renewals_due: RenewalsDue {
            window_days: 30,
            from: at,
            until: at + chrono::Duration::days(30),
            subscriptions: 1,
            seats: 10,
            auto_renew: 0,
            items: vec![Renewal {
                subscription_id: Uuid::nil(),
                org_id: name.to_string(),
                product: format!("jira {name}"),
                plan: format!("plan {name}"),
                partner_id: Some(format!("p-{name}")),
                seats: 10,
                term_end: at + chrono::Duration::days(9),
                auto_renew: false,
            }],
        },
        cancellations_per_month: vec![
            MonthCancellations {
                month: "2026-02".into(),
                cancellations: 1,
                seats: 5,
            },
            MonthCancellations {
                month: "2026-03".into(),
                cancellations: 0,
                seats: 0,
            },
        ],
    };
    Data {
        cases: Ok(cases),
        sla: Ok(sla),
        subscriptions: Ok(subscriptions),
    }
}

/// Every page the dashboard renders, by a name.
fn renderings(name: &str) -> Vec<(String, String)> {
    let params = PageParams {
        from: Some(format!("2026-03-01\" {name}")),
        to: None,
        org_id: Some(name.to_string()),
        partner_id: Some(format!("p-{name}")),
    };
    let html = |markup: Result<page::Markup, ApiError>| markup.expect("rendered").into_string();
    let mut pages = vec![
        ("sign-in".to_string(), html(page::sign_in(None))),
        ("sign-in-error".to_string(), html(page::sign_in(Some(name)))),
        ("message".to_string(), html(page::message(name))),
    ];
    for role in [ActorRole::Customer, ActorRole::Partner, ActorRole::Admin] {
        let principal = principal(role, name);
        let panels = page::panels(&principal, &data(name)).expect("panels");
        pages.push((
            format!("dashboard-{role}"),
            html(page::dashboard(
                &principal,
                &params,
                Some(period()),
                &params.query(),
                &panels,
            )),
        ));
        let x = page::message("x").expect("message");
        pages.push((
            format!("dashboard-empty-{role}"),
            html(page::dashboard(
                &principal,
                &PageParams::default(),
                None,
                "",
                &x,
            )),
        ));
    }
    let refused = Data {
        cases: Err(ApiError::Forbidden(format!("case reports need {name}"))),
        sla: Err(ApiError::Forbidden("no".into())),
        subscriptions: Err(ApiError::Internal(name.into())),
    };
    let principal = principal(ActorRole::Partner, name);
    pages.push((
        "panels-refused".into(),
        html(page::panels(&principal, &refused)),
    ));
    let half = Data {
        sla: Err(ApiError::Unprocessable {
            code: "x",
            detail: format!("bad {name}"),
        }),
        ..data(name)
    };
    pages.push((
        "panels-no-sla".into(),
        html(page::panels(&principal, &half)),
    ));
    let none = Data {
        cases: Err(ApiError::NotFound("x".into())),
        sla: Err(ApiError::NotFound("x".into())),
        ..data(name)
    };
    pages.push((
        "panels-no-cases".into(),
        html(page::panels(&principal, &none)),
    ));
    pages
}

/// The templates, read as the compiler reads them.
const TEMPLATES: [(&str, &str); 6] = [
    (
        "base",
        include_str!("../../../templates/dashboard/base.html"),
    ),
    (
        "sign_in",
        include_str!("../../../templates/dashboard/sign_in.html"),
    ),
    (
        "dashboard",
        include_str!("../../../templates/dashboard/dashboard.html"),
    ),
    (
        "panels",
        include_str!("../../../templates/dashboard/panels.html"),
    ),
    (
        "table",
        include_str!("../../../templates/dashboard/table.html"),
    ),
    (
        "message",
        include_str!("../../../templates/dashboard/message.html"),
    ),
];

#[test]
fn hostile_names_and_messages_come_out_escaped() {
    let escaped = "&#60;script&#62;alert(1)&#60;/script&#62;";
    let benign = renderings("acme");
    let hostile = renderings(HOSTILE);
    assert_eq!(benign.len(), hostile.len());
    for ((file, plain), (_, html)) in benign.iter().zip(&hostile) {
        assert!(!html.contains(HOSTILE), "{file}: {html}");
        // The only script is the page's own (full pages) and fragments have none.
        let scripts = usize::from(html.starts_with("<!doctype html>"));
        assert_eq!(html.matches("<script").count(), scripts, "{file}: {html}");
        // The names change no element and no attribute: as many `<` and `"` as with `acme`.
        for c in ['<', '>', '"'] {
            assert_eq!(
                html.matches(c).count(),
                plain.matches(c).count(),
                "{file}: {c}"
            );
        }
    }
    let page = |name: &str| {
        &hostile
            .iter()
            .find(|(file, _)| file == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .1
    };
    for name in [
        "sign-in-error",
        "message",
        "dashboard-customer",
        "dashboard-partner",
        "dashboard-admin",
        "panels-refused",
        "panels-no-sla",
    ] {
        assert!(page(name).contains(escaped), "{name}: {}", page(name));
    }
    assert!(
        page("sign-in-error").contains(&format!("<p class=\"error\" role=\"alert\">{escaped}</p>"))
    );
    assert!(page("dashboard-admin").contains(&format!(
        "Signed in as <strong>{escaped}@example.test</strong> (admin: every customer)"
    )));
    assert!(page("dashboard-customer").contains(&format!("(org admin of {escaped})")));
    // A quote in a filter cannot end the attribute it is shown in.
    assert!(page("dashboard-admin").contains(&format!(
        "<input type=\"date\" name=\"from\" value=\"2026-03-01&#34; {escaped}\">"
    )));
    assert!(page("dashboard-admin").contains(&format!(
        "<input name=\"org_id\" value=\"{escaped}\" placeholder=\"all\" size=\"10\">"
    )));
    assert!(page("panels-refused").contains(&format!(
        "<p class=\"notice\" role=\"alert\">No case reports: case reports need {escaped}.</p>"
    )));
    // Products, plans and orgs, in the tables and in the charts' labels.
    let admin = page("dashboard-admin");
    assert!(admin.contains(&format!("<th scope=\"row\">jira {escaped}</th>")));
    assert!(admin.contains(&format!("<td>plan {escaped}</td>")));
    assert!(admin.contains(&format!("<td>{escaped}</td><td>jira {escaped}</td>")));
    assert!(
        admin.contains("&lt;script&gt;"),
        "plotters escapes the labels it draws"
    );
}

#[test]
fn charts_are_the_only_markup_that_goes_into_the_page_as_it_is() {
    // No template turns escaping off: values reach the page unescaped only through the
    // types marked `HtmlSafe`, `charts::Svg` (made only in charts.rs, see its compile_fail
    // example) and `page::Markup` (a rendered template).
    for (name, source) in TEMPLATES {
        let compact: String = source.chars().filter(|c| !c.is_whitespace()).collect();
        for off in ["|safe", "|escape(", "|e(", "escape=", "autoescape"] {
            assert!(!compact.contains(off), "{name}.html uses {off}");
        }
    }
    let principal = principal(ActorRole::Admin, "acme");
    let html = page::panels(&principal, &data(HOSTILE))
        .expect("panels")
        .into_string();
    assert_eq!(html.matches("<svg class=\"chart\" role=\"img\"").count(), 8);
    assert_eq!(html.matches("<figure>\n<svg class=\"chart\"").count(), 8);
    assert_eq!(html.matches("</svg>\n\n</figure>").count(), 8);
    assert!(!html.contains(HOSTILE));
}
