//! The partner view's read: per customer org, the subscriptions a partner manages there by
//! portal tab, their seats, and the org's open cases.

use tokio_postgres::GenericClient;

/// One customer org of a partner.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct CustomerRow {
    pub org_id: String,
    pub active_subscriptions: i64,
    pub upcoming_subscriptions: i64,
    pub inactive_subscriptions: i64,
    pub active_seats: i64,
    pub open_cases: i64,
}

/// The figures of `orgs` for partner `partner`, by org.
pub async fn customers(
    client: &impl GenericClient,
    partner: &str,
    orgs: &[String],
) -> Result<Vec<CustomerRow>, tokio_postgres::Error> {
    client
        .query(
            "SELECT to_jsonb(c) FROM ( \
               SELECT o.org_id, \
                      count(s.id) FILTER (WHERE s.status IN ('active', 'non_renewing')) \
                          AS active_subscriptions, \
                      count(s.id) FILTER (WHERE s.status = 'upcoming') AS upcoming_subscriptions, \
                      count(s.id) FILTER (WHERE s.status IN ('cancelled', 'expired')) \
                          AS inactive_subscriptions, \
                      coalesce(sum(s.seats) FILTER (WHERE s.status IN ('active', 'non_renewing')), \
                               0)::bigint AS active_seats, \
                      (SELECT count(*) FROM case_view v \
                        WHERE v.org_id = o.org_id AND v.status NOT IN ('resolved', 'closed')) \
                          AS open_cases \
                 FROM unnest($2::text[]) AS o(org_id) \
                 LEFT JOIN subscription_view s ON s.org_id = o.org_id AND s.partner_id = $1 \
                GROUP BY o.org_id ORDER BY o.org_id) c",
            &[&partner, &orgs],
        )
        .await?
        .iter()
        .map(|row| {
            row.try_get::<_, tokio_postgres::types::Json<CustomerRow>>(0)
                .map(|j| j.0)
        })
        .collect()
}
