//! The languages people and orgs chose through the API (`mail_languages`, V21): what the
//! worker renders mail in before the server's configuration.

use tokio_postgres::GenericClient;

use super::render::Language;

/// Whose choice: an org's (by id) or a person's (by lower-case address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chooser<'a> {
    Org(&'a str),
    User(&'a str),
}

impl Chooser<'_> {
    fn key(&self) -> (&'static str, String) {
        match self {
            Self::Org(org) => ("org", (*org).to_string()),
            Self::User(user) => ("user", user.trim().to_lowercase()),
        }
    }
}

/// The language `chooser` chose, if any.
pub async fn chosen(
    client: &impl GenericClient,
    chooser: Chooser<'_>,
) -> Result<Option<Language>, tokio_postgres::Error> {
    let (kind, subject) = chooser.key();
    Ok(client
        .query_opt(
            "SELECT language FROM mail_languages WHERE kind = $1 AND subject = $2",
            &[&kind, &subject],
        )
        .await?
        .map(|row| row.try_get::<_, String>("language"))
        .transpose()?
        .and_then(|tag| Language::parse(&tag)))
}

/// Sets (or with `None` clears) what `chooser` chose.
pub async fn choose(
    client: &impl GenericClient,
    chooser: Chooser<'_>,
    language: Option<Language>,
    by: &str,
) -> Result<(), tokio_postgres::Error> {
    let (kind, subject) = chooser.key();
    match language {
        Some(language) => {
            client
                .execute(
                    "INSERT INTO mail_languages (kind, subject, language, updated_by) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (kind, subject) DO UPDATE \
                        SET language = EXCLUDED.language, updated_by = EXCLUDED.updated_by, \
                            updated_at = now()",
                    &[&kind, &subject, &language.tag(), &by],
                )
                .await?;
        }
        None => {
            client
                .execute(
                    "DELETE FROM mail_languages WHERE kind = $1 AND subject = $2",
                    &[&kind, &subject],
                )
                .await?;
        }
    }
    Ok(())
}

/// Whether `email` of `partner` gets alerts on its customers' cases.
pub async fn case_alerts(
    client: &impl GenericClient,
    partner: &str,
    email: &str,
) -> Result<bool, tokio_postgres::Error> {
    Ok(client
        .query_opt(
            "SELECT 1 FROM partner_case_alerts WHERE partner_id = $1 AND email = $2",
            &[&partner, &email.trim().to_lowercase()],
        )
        .await?
        .is_some())
}

/// Opts `email` of `partner` in to (or out of) alerts on its customers' cases.
pub async fn set_case_alerts(
    client: &impl GenericClient,
    partner: &str,
    email: &str,
    on: bool,
) -> Result<(), tokio_postgres::Error> {
    let email = email.trim().to_lowercase();
    if on {
        client
            .execute(
                "INSERT INTO partner_case_alerts (partner_id, email) VALUES ($1, $2) \
                 ON CONFLICT DO NOTHING",
                &[&partner, &email],
            )
            .await?;
    } else {
        client
            .execute(
                "DELETE FROM partner_case_alerts WHERE partner_id = $1 AND email = $2",
                &[&partner, &email],
            )
            .await?;
    }
    Ok(())
}
