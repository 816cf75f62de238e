//! The two locks of a rebuild or drift check: the exclusive right to rebuild or check a
//! projection (a session lock, held for the whole run), and the projection's claim (a
//! transaction lock, which pauses its live runner while the last events are applied). Separate
//! because the rebuild, the swap and the drift check all take them.

use deadpool_postgres::{Pool, Transaction};

use crate::error::ProjectionError;
use crate::projection::CLAIM_NAMESPACE;

/// Namespace of the advisory locks that make rebuilds and checks of a projection exclusive.
const EXCLUSIVE_NAMESPACE: i32 = 0x5d5d;

/// The exclusive right to rebuild or check some projections, held until dropped: session
/// advisory locks on a connection taken out of the pool, which closes (and releases them)
/// when this is dropped, whatever happened meanwhile.
pub(super) struct Exclusive {
    client: deadpool_postgres::ClientWrapper,
}

/// Takes the exclusive right to rebuild or check `names`, or refuses with
/// [`ProjectionError::Busy`] naming who holds it.
pub(super) async fn exclusive(pool: &Pool, names: &[&str]) -> Result<Exclusive, ProjectionError> {
    let client = deadpool_postgres::Object::take(pool.get().await?);
    let mut names = names.to_vec();
    names.sort_unstable();
    names.dedup();
    for name in names {
        let taken: bool = client
            .query_one(
                "SELECT pg_try_advisory_lock($1, hashtext($2)) AS taken",
                &[&EXCLUSIVE_NAMESPACE, &name],
            )
            .await?
            .try_get("taken")?;
        if !taken {
            let holder: Option<i32> = client
                .query_opt(
                    "SELECT pid FROM pg_locks \
                      WHERE locktype = 'advisory' AND objsubid = 2 AND granted \
                        AND classid = $1::int8::oid \
                        AND objid = (hashtext($2)::int8 & 4294967295)::oid",
                    &[&i64::from(EXCLUSIVE_NAMESPACE), &name],
                )
                .await?
                .map(|row| row.try_get("pid"))
                .transpose()?;
            let by = holder.map_or_else(String::new, |pid| format!(" (database backend {pid})"));
            return Err(ProjectionError::Busy(format!(
                "a rebuild or check of `{name}` is already running{by}; run this one when it \
                 has finished"
            )));
        }
    }
    Ok(Exclusive { client })
}

impl Exclusive {
    /// Gives the right up now. Dropping it does too, but the connection then closes in the
    /// background: a rebuild or check started right after this one could still find the
    /// locks held and refuse as busy.
    pub(super) async fn release(self) {
        if let Err(error) = self
            .client
            .batch_execute("SELECT pg_advisory_unlock_all()")
            .await
        {
            tracing::debug!(%error, "releasing the rebuild locks; the closing connection will");
        }
    }
}
/// Waits for the projection's claim: its live runner pauses until this transaction ends.
pub(super) async fn claim(tx: &Transaction<'_>, name: &str) -> Result<(), ProjectionError> {
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2))",
        &[&CLAIM_NAMESPACE, &name],
    )
    .await?;
    Ok(())
}
