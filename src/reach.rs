//! What a partner reaches: the orgs that granted it a relationship, each with the scopes in
//! force there, which are the partner token's own scopes intersected with the relationship's.
//!
//! The reach is loaded for every partner request from `partner_relationships` on the primary
//! (see `crate::relationships`), never cached: a grant or an end is in force for the very next
//! request. Everyone who is not a partner reaches no org this way.

use subdesk_aggregates::partner_relationship::PartnerScope;

/// The orgs a partner principal reaches, with the scopes in force for each.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PartnerReach {
    /// Sorted by org id.
    grants: Vec<(String, Vec<PartnerScope>)>,
}

impl PartnerReach {
    /// The reach of a partner whose token has `token_scopes`, from its active relationships
    /// (`org id`, relationship scopes). An org where nothing is left after the intersection
    /// is not reached at all.
    pub fn new(
        token_scopes: &[String],
        relationships: impl IntoIterator<Item = (String, Vec<String>)>,
    ) -> Self {
        let mut grants: Vec<(String, Vec<PartnerScope>)> = relationships
            .into_iter()
            .filter_map(|(org, scopes)| {
                let mut effective: Vec<PartnerScope> = scopes
                    .iter()
                    .filter(|s| token_scopes.contains(s))
                    .filter_map(|s| PartnerScope::parse(s))
                    .collect();
                effective.sort();
                effective.dedup();
                (!effective.is_empty()).then_some((org, effective))
            })
            .collect();
        grants.sort();
        grants.dedup_by(|a, b| a.0 == b.0);
        Self { grants }
    }

    /// Whether the org granted this partner a relationship that leaves it any scope.
    pub fn reaches(&self, org: &str) -> bool {
        self.scopes(org).is_some()
    }

    /// Whether `scope` is in force for `org`.
    pub fn allows(&self, org: &str, scope: PartnerScope) -> bool {
        self.scopes(org).is_some_and(|s| s.contains(&scope))
    }

    /// The orgs where `scope` is in force, sorted.
    pub fn orgs(&self, scope: PartnerScope) -> Vec<String> {
        self.grants
            .iter()
            .filter(|(_, scopes)| scopes.contains(&scope))
            .map(|(org, _)| org.clone())
            .collect()
    }

    fn scopes(&self, org: &str) -> Option<&[PartnerScope]> {
        self.grants
            .binary_search_by(|(o, _)| o.as_str().cmp(org))
            .ok()
            .and_then(|i| self.grants.get(i))
            .map(|(_, scopes)| scopes.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_scopes_in_force_are_the_tokens_intersected_with_the_relationships() {
        let reach = PartnerReach::new(
            &strings(&["view_customers"]),
            [
                (
                    "acme".to_string(),
                    strings(&["view_customers", "access_cases"]),
                ),
                ("globex".to_string(), strings(&["access_cases"])),
            ],
        );
        assert!(reach.allows("acme", PartnerScope::ViewCustomers));
        assert!(!reach.allows("acme", PartnerScope::AccessCases));
        // Nothing of globex's relationship is left for this token.
        assert!(!reach.reaches("globex"));
        assert_eq!(reach.orgs(PartnerScope::ViewCustomers), strings(&["acme"]));
        assert!(reach.orgs(PartnerScope::AccessCases).is_empty());
    }

    #[test]
    fn no_relationship_reaches_nothing() {
        let reach = PartnerReach::new(&strings(&["view_customers", "access_cases"]), []);
        assert!(!reach.reaches("acme"));
        assert_eq!(reach, PartnerReach::default());
    }

    #[test]
    fn orgs_are_found_whatever_the_order_they_came_in() {
        let both = strings(&["view_customers", "access_cases"]);
        let reach = PartnerReach::new(
            &both,
            [
                ("zeta".to_string(), both.clone()),
                ("acme".to_string(), both.clone()),
                ("mid".to_string(), strings(&["bogus", "access_cases"])),
            ],
        );
        assert!(reach.reaches("zeta") && reach.reaches("acme") && reach.reaches("mid"));
        assert!(!reach.allows("mid", PartnerScope::ViewCustomers));
        assert_eq!(
            reach.orgs(PartnerScope::AccessCases),
            strings(&["acme", "mid", "zeta"])
        );
    }
}
