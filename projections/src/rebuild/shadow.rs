//! The shadow copy of a projection's tables, in a schema of its own (`rebuild_<name>`): created
//! empty with the live tables' constraints, selected through `search_path`, given the live
//! indexes after the replay, and dropped. Separate so that the replay, the swap and the drift
//! check share one idea of where the shadow is; the swap and the comparison are theirs.

use deadpool_postgres::{Pool, Transaction};

use crate::error::ProjectionError;
use crate::projection::Projection;

/// The outbox the projections append to. A rebuild shadows it too (replaying history must not
/// send old e-mails again) and hands over only the rows of events the live projection had not
/// reached yet.
pub(super) const OUTBOX: &str = "notifications";

/// The shadow copy of a projection's tables.
pub(super) struct Shadow {
    pub(super) schema: String,
    pub(super) live_schema: String,
    pub(super) name: &'static str,
    pub(super) tables: &'static [&'static str],
}

impl Shadow {
    /// The projection's tables and the outbox.
    fn shadowed(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.tables.iter().copied().chain(std::iter::once(OUTBOX))
    }
}

impl Shadow {
    /// Creates `rebuild_<name>` with empty copies of the projection's tables: columns,
    /// defaults, checks and the primary / unique constraints (which upserts need) under their
    /// original names. Secondary indexes come after the replay.
    pub(super) async fn create(
        pool: &Pool,
        projection: &dyn Projection,
    ) -> Result<Self, ProjectionError> {
        let client = pool.get().await?;
        let live_schema: String = client
            .query_one("SELECT current_schema() AS schema", &[])
            .await?
            .try_get("schema")?;
        let shadow = Self {
            schema: format!("rebuild_{}", projection.name()),
            live_schema,
            name: projection.name(),
            tables: projection.tables(),
        };
        client
            .batch_execute(&format!(
                "DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s};",
                s = shadow.schema
            ))
            .await?;
        for table in shadow.shadowed() {
            let live = format!("{}.{table}", shadow.live_schema);
            client
                .batch_execute(&format!(
                    "CREATE TABLE {}.{table} (LIKE {live} INCLUDING DEFAULTS INCLUDING IDENTITY \
                     INCLUDING GENERATED INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMMENTS)",
                    shadow.schema
                ))
                .await?;
            let constraints = client
                .query(
                    "SELECT conname::text AS name, pg_get_constraintdef(oid) AS definition \
                       FROM pg_constraint \
                      WHERE conrelid = $1::text::regclass AND contype IN ('p', 'u', 'x') \
                      ORDER BY conname",
                    &[&live],
                )
                .await?;
            for row in constraints {
                let (name, definition): (String, String) =
                    (row.try_get("name")?, row.try_get("definition")?);
                client
                    .batch_execute(&format!(
                        "ALTER TABLE {}.{table} ADD CONSTRAINT {name} {definition}",
                        shadow.schema
                    ))
                    .await?;
            }
        }
        Ok(shadow)
    }

    /// Points unqualified names at the shadow tables for the rest of `tx`, after locking them
    /// by their qualified names: if the shadow is gone, `tx` fails here rather than writing to
    /// the live tables the `search_path` would fall through to, and while `tx` runs nobody can
    /// drop it.
    pub(super) async fn select(&self, tx: &Transaction<'_>) -> Result<(), ProjectionError> {
        let tables: Vec<String> = self
            .shadowed()
            .map(|t| format!("{}.{t}", self.schema))
            .collect();
        tx.batch_execute(&format!(
            "LOCK TABLE {} IN ACCESS SHARE MODE; SET LOCAL search_path TO {}, {}",
            tables.join(", "),
            self.schema,
            self.live_schema
        ))
        .await?;
        Ok(())
    }

    /// Recreates the live tables' secondary indexes, with their names, on the shadow tables.
    pub(super) async fn create_indexes(&self, pool: &Pool) -> Result<(), ProjectionError> {
        let client = pool.get().await?;
        for table in self.tables {
            let live = format!("{}.{table}", self.live_schema);
            let indexes = client
                .query(
                    "SELECT pg_get_indexdef(i.indexrelid) AS definition FROM pg_index i \
                      WHERE i.indrelid = $1::text::regclass \
                        AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
                    &[&live],
                )
                .await?;
            for row in indexes {
                let definition: String = row.try_get("definition")?;
                let Some((head, tail)) = definition.split_once(" USING ") else {
                    continue;
                };
                let Some(on) = head.rfind(" ON ") else {
                    continue;
                };
                client
                    .batch_execute(&format!(
                        "{} ON {}.{table} USING {tail}",
                        &head[..on],
                        self.schema
                    ))
                    .await?;
            }
        }
        Ok(())
    }

    pub(super) async fn drop(&self, pool: &Pool) -> Result<(), ProjectionError> {
        let client = pool.get().await?;
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema))
            .await?;
        Ok(())
    }
}
