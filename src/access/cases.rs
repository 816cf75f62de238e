//! Who sees which support case, and who may open one for an org.

use subdesk_aggregates::ActorRole;

use super::same_user;
use crate::auth::{Principal, SCOPE_ACCESS_CASES};

/// The facts about a case that decide who sees it.
#[derive(Debug, Clone, Copy)]
pub struct CaseAudience<'a> {
    pub org_id: &'a str,
    pub requester: &'a str,
    pub participants: &'a [String],
}

/// Whether `principal` sees a case. `partner_orgs` are the customer orgs assigned to the
/// principal's partner (empty for everyone else).
pub fn sees_case(principal: &Principal, case: CaseAudience<'_>, partner_orgs: &[String]) -> bool {
    match principal.role {
        ActorRole::Agent | ActorRole::Admin | ActorRole::Auditor | ActorRole::System => true,
        ActorRole::Customer => {
            principal.in_org(case.org_id)
                && (principal.org_admin
                    || same_user(case.requester, &principal.user)
                    || case
                        .participants
                        .iter()
                        .any(|p| same_user(p, &principal.user)))
        }
        ActorRole::Partner => {
            principal.has_scope(SCOPE_ACCESS_CASES) && partner_orgs.iter().any(|o| o == case.org_id)
        }
    }
}

/// Whether `principal` may open a case for `org`.
pub fn may_open_case_for(principal: &Principal, org: &str, partner_orgs: &[String]) -> bool {
    match principal.role {
        ActorRole::Agent | ActorRole::Admin => true,
        ActorRole::Customer => principal.in_org(org),
        ActorRole::Partner => {
            principal.has_scope(SCOPE_ACCESS_CASES) && partner_orgs.iter().any(|o| o == org)
        }
        ActorRole::Auditor | ActorRole::System => false,
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn principal(role: ActorRole, user: &str, org: Option<&str>, org_admin: bool) -> Principal {
        Principal {
            token_id: Uuid::nil(),
            role,
            user: user.into(),
            org_id: org.map(str::to_string),
            org_admin,
            partner_id: (role == ActorRole::Partner).then(|| "p1".to_string()),
            scopes: if role == ActorRole::Partner {
                vec![SCOPE_ACCESS_CASES.into()]
            } else {
                vec![]
            },
        }
    }

    const CASE: CaseAudience<'static> = CaseAudience {
        org_id: "acme",
        requester: "Ann@acme.test",
        participants: &[],
    };

    #[test]
    fn a_requester_sees_their_case_whatever_the_case_of_their_address() {
        let ann = principal(ActorRole::Customer, "ann@ACME.test", Some("acme"), false);
        assert!(sees_case(&ann, CASE, &[]));
    }

    #[test]
    fn another_user_of_the_same_org_does_not_see_it_unless_org_admin() {
        let bob = principal(ActorRole::Customer, "bob@acme.test", Some("acme"), false);
        assert!(!sees_case(&bob, CASE, &[]));
        let admin = principal(ActorRole::Customer, "bob@acme.test", Some("acme"), true);
        assert!(sees_case(&admin, CASE, &[]));
    }

    #[test]
    fn an_org_admin_of_another_org_does_not_see_it() {
        let other = principal(ActorRole::Customer, "eve@other.test", Some("other"), true);
        assert!(!sees_case(&other, CASE, &[]));
    }

    #[test]
    fn a_partner_sees_cases_of_assigned_orgs_only_with_access_cases() {
        let partner = principal(ActorRole::Partner, "pat@partner.test", None, false);
        assert!(sees_case(&partner, CASE, &["acme".into()]));
        assert!(!sees_case(&partner, CASE, &["other".into()]));
        let mut scoped = partner.clone();
        scoped.scopes.clear();
        assert!(!sees_case(&scoped, CASE, &["acme".into()]));
    }
}
