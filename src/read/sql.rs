//! A SQL statement built from optional filters, with its parameters numbered as they are
//! bound: the lists' `WHERE` clauses grow one condition per filter the caller gave.

use tokio_postgres::types::ToSql;

/// A statement being built, with its parameters.
#[derive(Default)]
pub struct Sql {
    pub text: String,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Sql {
    /// Starts a statement; conditions are added with [`Sql::and`].
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            params: Vec::new(),
        }
    }

    /// Adds a parameter; returns its placeholder (`$1`, `$2`, ...).
    pub fn bind<T: ToSql + Sync + Send + 'static>(&mut self, value: T) -> String {
        self.params.push(Box::new(value));
        format!("${}", self.params.len())
    }

    /// Appends ` AND <condition>`.
    pub fn and(&mut self, condition: impl AsRef<str>) {
        self.text.push_str(" AND ");
        self.text.push_str(condition.as_ref());
    }

    /// Appends text as it is (an `ORDER BY`, a `LIMIT`).
    pub fn push(&mut self, text: impl AsRef<str>) {
        self.text.push_str(text.as_ref());
    }

    pub fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|p| p.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }

    pub fn len(&self) -> usize {
        self.params.len()
    }

    pub fn is_empty(&self) -> bool {
        self.params.is_empty()
    }
}

/// Escapes `%`, `_` and `\` so that text matches itself in a `LIKE` pattern.
pub fn like_escape(text: &str) -> String {
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            escaped.push('\\');
        }
        escaped.push(c);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conditions_are_joined_and_placeholders_numbered_in_binding_order() {
        let mut sql = Sql::new("SELECT id FROM t WHERE true");
        let org = sql.bind("acme".to_string());
        sql.and(format!("org_id = {org}"));
        let priority = sql.bind(2i16);
        sql.and(format!("priority = {priority}"));
        let limit = sql.bind(26i64);
        sql.push(format!(" ORDER BY id LIMIT {limit}"));
        assert_eq!(
            sql.text,
            "SELECT id FROM t WHERE true AND org_id = $1 AND priority = $2 ORDER BY id LIMIT $3"
        );
        assert_eq!(sql.len(), 3);
        assert_eq!(sql.params().len(), 3);
    }

    #[test]
    fn like_patterns_match_the_text_literally() {
        assert_eq!(like_escape(r"100% _done\"), r"100\% \_done\\");
    }
}
