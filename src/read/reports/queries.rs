//! The reports' queries over the `reports` read models.

use std::collections::HashMap;

use chrono::{Duration, NaiveDate};
use tokio_postgres::types::ToSql;

use chrono::{DateTime, Utc};
use subdesk_aggregates::support_case::{CasePolicy, RequestType};
use tokio_postgres::GenericClient;

use super::*;
use crate::access::reports::SubscriptionScope;

/// A read-only transaction for one report's queries, with room to sort a year of cases in
/// memory (a median sorts every value it is taken over).
pub async fn report_transaction<'a>(
    client: &'a mut deadpool_postgres::Object,
) -> Result<deadpool_postgres::Transaction<'a>, tokio_postgres::Error> {
    let tx = client.build_transaction().read_only(true).start().await?;
    tx.batch_execute("SET LOCAL work_mem = '64MB'").await?;
    Ok(tx)
}

/// The case report over `orgs` (`None`: every org), as of `now`.
pub async fn cases(
    tx: &impl GenericClient,
    orgs: &Option<Vec<String>>,
    period: Period,
    now: DateTime<Utc>,
) -> Result<CasesReport, tokio_postgres::Error> {
    let by_org: [&(dyn ToSql + Sync); 1] = [orgs];
    let by_org_days: [&(dyn ToSql + Sync); 3] = [orgs, &period.from, &period.to];
    // Every org: the counters kept over all orgs, a row per day and product.
    let (days_table, org_filter) = if orgs.is_none() {
        ("report_case_days_all", "$1::text[] IS NULL")
    } else {
        ("report_case_days", "org_id = ANY($1)")
    };
    let open = tx.query(
        "SELECT status, priority, sum(cases)::bigint FROM report_open_cases \
          WHERE ($1::text[] IS NULL OR org_id = ANY($1)) \
          GROUP BY status, priority",
        &by_org,
    );
    let days_sql = format!(
        "SELECT day, sum(opened)::bigint, sum(resolved)::bigint, sum(auto_resolved)::bigint \
           FROM {days_table} WHERE day BETWEEN $2 AND $3 AND {org_filter} GROUP BY day"
    );
    let products_sql = format!(
        "SELECT product, sum(opened)::bigint, sum(resolved)::bigint, sum(auto_resolved)::bigint \
           FROM {days_table} WHERE day BETWEEN $2 AND $3 AND {org_filter} \
          GROUP BY product ORDER BY 2 DESC, product"
    );
    let days = tx.query(&days_sql, &by_org_days);
    let products = tx.query(&products_sql, &by_org_days);
    let (start, end) = (period.start(), period.end());
    let opened_params: [&(dyn ToSql + Sync); 3] = [orgs, &start, &end];
    let request_types = tx.query(
        "SELECT request_type, count(*) FROM report_case_facts \
          WHERE opened_at >= $2 AND opened_at < $3 AND ($1::text[] IS NULL OR org_id = ANY($1)) \
          GROUP BY request_type",
        &opened_params,
    );
    let (open, days, products, request_types) =
        futures::try_join!(open, days, products, request_types)?;

    let open: Vec<(String, i16, i64)> = open
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?, r.try_get(2)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let mut cells = Vec::new();
    for status in subdesk_projections::reports::OPEN_STATUSES {
        for priority in 1..=4i16 {
            let cases = open
                .iter()
                .find(|(s, p, _)| s == status.as_str() && *p == priority)
                .map_or(0, |(_, _, cases)| *cases);
            cells.push(OpenCell {
                status: status.as_str().into(),
                priority,
                cases,
            });
        }
    }
    let open = OpenCases {
        total: cells.iter().map(|c| c.cases).sum(),
        cells,
    };
    let days: HashMap<NaiveDate, [i64; 3]> = days
        .iter()
        .map(|r| Ok((r.try_get(0)?, [r.try_get(1)?, r.try_get(2)?, r.try_get(3)?])))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let per_day: Vec<CaseDay> = period
        .days()
        .map(|day| {
            let [opened, resolved, auto_resolved] = days.get(&day).copied().unwrap_or_default();
            CaseDay {
                day,
                opened,
                resolved,
                auto_resolved,
            }
        })
        .collect();
    let totals = CaseTotals {
        opened: per_day.iter().map(|d| d.opened).sum(),
        resolved: per_day.iter().map(|d| d.resolved).sum(),
        auto_resolved: per_day.iter().map(|d| d.auto_resolved).sum(),
    };
    let by_product = products
        .iter()
        .map(|r| {
            Ok(ProductCases {
                product: r.try_get(0)?,
                opened: r.try_get(1)?,
                resolved: r.try_get(2)?,
                auto_resolved: r.try_get(3)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let request_types: HashMap<String, i64> = request_types
        .iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let by_request_type = RequestType::ALL
        .iter()
        .map(|t| RequestTypeCases {
            request_type: t.as_str().into(),
            opened: request_types.get(t.as_str()).copied().unwrap_or(0),
        })
        .collect();
    Ok(CasesReport {
        period,
        generated_at: now,
        open,
        per_day,
        by_product,
        by_request_type,
        totals,
    })
}

/// `met / (met + breached)`, or none when nothing was judged.
fn share(met: i64, breached: i64) -> Option<f64> {
    let judged = met + breached;
    (judged > 0).then(|| met as f64 / judged as f64)
}

/// The SLA report over `orgs` (`None`: every org) under `policy`, as of `now`.
pub async fn sla(
    tx: &impl GenericClient,
    orgs: &Option<Vec<String>>,
    period: Period,
    now: DateTime<Utc>,
    policy: &CasePolicy,
) -> Result<SlaReport, tokio_postgres::Error> {
    let (start, end) = (period.start(), period.end());
    let opened_params: [&(dyn ToSql + Sync); 4] = [orgs, &start, &end, &now];
    let resolved_params: [&(dyn ToSql + Sync); 3] = [orgs, &start, &end];
    // ROLLUP adds the row of all priorities (priority NULL). percentile_cont ignores NULLs:
    // the median is over the cases that were answered (resolved).
    let responses = tx.query(
        "SELECT priority, count(*), count(first_responded_at), \
                count(*) FILTER (WHERE first_response_breached = false), \
                count(*) FILTER (WHERE first_response_breached \
                    OR (first_responded_at IS NULL \
                        AND coalesce(resolved_at, closed_at, $4) > first_response_due)), \
                count(*) FILTER (WHERE first_responded_at IS NULL AND resolved_at IS NULL \
                    AND closed_at IS NULL AND first_response_due >= $4), \
                percentile_cont(0.5) WITHIN GROUP (ORDER BY first_response_seconds), \
                coalesce(sum(next_replies_met), 0)::bigint, \
                (coalesce(sum(next_replies_breached), 0) \
                 + count(*) FILTER (WHERE next_reply_due < $4))::bigint \
           FROM report_case_facts \
          WHERE opened_at >= $2 AND opened_at < $3 AND ($1::text[] IS NULL OR org_id = ANY($1)) \
          GROUP BY ROLLUP (priority)",
        &opened_params,
    );
    let resolutions = tx.query(
        "SELECT priority, count(*), \
                percentile_cont(0.5) WITHIN GROUP (ORDER BY resolution_seconds), \
                count(*) FILTER (WHERE resolution_elapsed_seconds <= resolution_target_seconds), \
                count(*) FILTER (WHERE resolution_elapsed_seconds > resolution_target_seconds), \
                percentile_cont(0.5) WITHIN GROUP (ORDER BY resolution_elapsed_seconds) \
           FROM report_case_facts \
          WHERE resolved_at >= $2 AND resolved_at < $3 AND ($1::text[] IS NULL OR org_id = ANY($1)) \
          GROUP BY ROLLUP (priority)",
        &resolved_params,
    );
    let (responses, resolutions) = futures::try_join!(responses, resolutions)?;
    // (priority, opened, responded, met, breached, awaiting, median first response,
    //  next replies met, next replies breached)
    type Responses = (Option<i16>, i64, i64, i64, i64, i64, Option<f64>, i64, i64);
    let responses: Vec<Responses> = responses
        .iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
                r.try_get(5)?,
                r.try_get(6)?,
                r.try_get(7)?,
                r.try_get(8)?,
            ))
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    // (priority, resolved, median, met, breached, median in business time)
    type Resolutions = (Option<i16>, i64, Option<f64>, i64, i64, Option<f64>);
    let resolutions: Vec<Resolutions> = resolutions
        .iter()
        .map(|r| {
            Ok((
                r.try_get(0)?,
                r.try_get(1)?,
                r.try_get(2)?,
                r.try_get(3)?,
                r.try_get(4)?,
                r.try_get(5)?,
            ))
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let row = |priority: Option<i16>| {
        let mut row = SlaRow {
            priority,
            target_seconds: priority.map(|p| {
                policy
                    .first_response_target(u8::try_from(p).unwrap_or(4))
                    .num_seconds()
            }),
            resolution_target_days: priority.map(|p| {
                let index = usize::try_from(p.clamp(1, 4) - 1).unwrap_or(0);
                i64::from(policy.resolution_days[index])
            }),
            ..SlaRow::default()
        };
        if let Some(r) = responses.iter().find(|r| r.0 == priority) {
            row.opened = r.1;
            row.responded = r.2;
            row.met = r.3;
            row.breached = r.4;
            row.awaiting_response = r.5;
            row.median_first_response_seconds = r.6;
            row.next_replies_met = r.7;
            row.next_replies_breached = r.8;
        }
        if let Some(r) = resolutions.iter().find(|r| r.0 == priority) {
            row.resolved = r.1;
            row.median_resolution_seconds = r.2;
            row.resolutions_met = r.3;
            row.resolutions_breached = r.4;
            row.median_resolution_business_seconds = r.5;
        }
        row.attainment = share(row.met, row.breached);
        row.next_reply_attainment = share(row.next_replies_met, row.next_replies_breached);
        row.resolution_attainment = share(row.resolutions_met, row.resolutions_breached);
        row
    };
    Ok(SlaReport {
        period,
        generated_at: now,
        priorities: (1..=4).map(|p| row(Some(p))).collect(),
        overall: row(None),
    })
}

fn group(rows: &[ActiveRow], key: impl Fn(&ActiveRow) -> String) -> Vec<ActiveGroup> {
    let mut groups: Vec<ActiveGroup> = Vec::new();
    for row in rows {
        let key = key(row);
        match groups.iter_mut().find(|g| g.key == key) {
            Some(g) => {
                g.subscriptions += row.subscriptions;
                g.seats += row.seats;
            }
            None => groups.push(ActiveGroup {
                key,
                subscriptions: row.subscriptions,
                seats: row.seats,
            }),
        }
    }
    groups.sort_by(|a, b| {
        b.subscriptions
            .cmp(&a.subscriptions)
            .then_with(|| a.key.cmp(&b.key))
    });
    groups
}

/// The subscription report over `scope`, as of `now`.
pub async fn subscriptions(
    tx: &impl GenericClient,
    scope: &SubscriptionScope,
    period: Period,
    now: DateTime<Utc>,
) -> Result<SubscriptionsReport, tokio_postgres::Error> {
    let until = now + Duration::days(RENEWAL_WINDOW_DAYS);
    let (start, end) = (period.start(), period.end());
    let scoped: [&(dyn ToSql + Sync); 2] = [&scope.orgs, &scope.partner];
    let due: [&(dyn ToSql + Sync); 4] = [&scope.orgs, &scope.partner, &now, &until];
    let due_items: [&(dyn ToSql + Sync); 5] =
        [&scope.orgs, &scope.partner, &now, &until, &RENEWAL_ITEMS];
    let cancelled: [&(dyn ToSql + Sync); 4] = [&scope.orgs, &scope.partner, &start, &end];
    // '' is the partner key of direct subscriptions in the counter table.
    let active = tx.query(
        "SELECT product, plan, nullif(partner_id, ''), sum(subscriptions)::bigint, \
                sum(seats)::bigint \
           FROM report_active_subscriptions \
          WHERE ($1::text[] IS NULL OR org_id = ANY($1)) AND ($2::text IS NULL OR partner_id = $2) \
          GROUP BY product, plan, partner_id ORDER BY product, plan, partner_id",
        &scoped,
    );
    let renewals = tx.query_one(
        "SELECT count(*), coalesce(sum(seats), 0)::bigint, count(*) FILTER (WHERE auto_renew) \
           FROM report_subscription_facts \
          WHERE status = 'active' AND term_end >= $3 AND term_end < $4 \
            AND ($1::text[] IS NULL OR org_id = ANY($1)) AND ($2::text IS NULL OR partner_id = $2)",
        &due,
    );
    let items = tx.query(
        "SELECT subscription_id, org_id, product, plan, partner_id, seats, term_end, auto_renew \
           FROM report_subscription_facts \
          WHERE status = 'active' AND term_end >= $3 AND term_end < $4 \
            AND ($1::text[] IS NULL OR org_id = ANY($1)) AND ($2::text IS NULL OR partner_id = $2) \
          ORDER BY term_end, subscription_id LIMIT $5",
        &due_items,
    );
    let cancellations = tx.query(
        "SELECT to_char(effective_at AT TIME ZONE 'UTC', 'YYYY-MM'), count(*), \
                sum(seats)::bigint \
           FROM report_cancellations \
          WHERE effective_at >= $3 AND effective_at < $4 \
            AND ($1::text[] IS NULL OR org_id = ANY($1)) AND ($2::text IS NULL OR partner_id = $2) \
          GROUP BY 1",
        &cancelled,
    );
    let (active, renewals, items, cancellations) =
        futures::try_join!(active, renewals, items, cancellations)?;

    let rows: Vec<ActiveRow> = active
        .iter()
        .map(|r| {
            Ok(ActiveRow {
                product: r.try_get(0)?,
                plan: r.try_get(1)?,
                partner_id: r.try_get(2)?,
                subscriptions: r.try_get(3)?,
                seats: r.try_get(4)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let active = ActiveSubscriptions {
        subscriptions: rows.iter().map(|r| r.subscriptions).sum(),
        seats: rows.iter().map(|r| r.seats).sum(),
        by_product: group(&rows, |r| r.product.clone()),
        by_plan: group(&rows, |r| r.plan.clone()),
        by_partner: group(&rows, |r| {
            r.partner_id.clone().unwrap_or_else(|| "direct".into())
        }),
        rows,
    };
    let renewals_due = RenewalsDue {
        window_days: RENEWAL_WINDOW_DAYS,
        from: now,
        until,
        subscriptions: renewals.try_get(0)?,
        seats: renewals.try_get(1)?,
        auto_renew: renewals.try_get(2)?,
        items: items
            .iter()
            .map(|r| {
                Ok(Renewal {
                    subscription_id: r.try_get(0)?,
                    org_id: r.try_get(1)?,
                    product: r.try_get(2)?,
                    plan: r.try_get(3)?,
                    partner_id: r.try_get(4)?,
                    seats: r.try_get(5)?,
                    term_end: r.try_get(6)?,
                    auto_renew: r.try_get(7)?,
                })
            })
            .collect::<Result<_, tokio_postgres::Error>>()?,
    };
    let cancellations: HashMap<String, [i64; 2]> = cancellations
        .iter()
        .map(|r| Ok((r.try_get(0)?, [r.try_get(1)?, r.try_get(2)?])))
        .collect::<Result<_, tokio_postgres::Error>>()?;
    let cancellations_per_month = period
        .months()
        .into_iter()
        .map(|month| {
            let [cancelled, seats] = cancellations.get(&month).copied().unwrap_or_default();
            MonthCancellations {
                cancellations: cancelled,
                seats,
                month,
            }
        })
        .collect();
    Ok(SubscriptionsReport {
        period,
        generated_at: now,
        active,
        renewals_due,
        cancellations_per_month,
    })
}
