//! Who sees which support case, and who may open one for an org.

use subdesk_aggregates::partner_relationship::PartnerScope;
use subdesk_aggregates::support_case::{SupportCaseCommand, Visibility};
use subdesk_aggregates::ActorRole;

use super::same_user;
use crate::auth::Principal;

/// The facts about a case that decide who sees it.
#[derive(Debug, Clone, Copy)]
pub struct CaseAudience<'a> {
    pub org_id: &'a str,
    pub requester: &'a str,
    pub participants: &'a [String],
}

/// Whether `principal` sees a case. A partner sees the cases of the orgs where its reach
/// allows `access_cases`.
pub fn sees_case(principal: &Principal, case: CaseAudience<'_>) -> bool {
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
        ActorRole::Partner => principal
            .reach
            .allows(case.org_id, PartnerScope::AccessCases),
    }
}

/// Whether `principal` may open a case for `org`.
pub fn may_open_case_for(principal: &Principal, org: &str) -> bool {
    match principal.role {
        ActorRole::Agent | ActorRole::Admin => true,
        ActorRole::Customer => principal.in_org(org),
        ActorRole::Partner => principal.reach.allows(org, PartnerScope::AccessCases),
        ActorRole::Auditor | ActorRole::System => false,
    }
}

/// Whether `principal` reads internal comments (and every other staff-only part of a case).
pub fn sees_internal(principal: &Principal) -> bool {
    principal.sees_everything()
}

/// What a principal may do to a case it sees. Refusals are 403: the case exists for them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseAction {
    Comment,
    CommentInternal,
    RequestInfo,
    Assign,
    Investigate,
    ChangePriority,
    ManageParticipants,
    Attach,
    RequestEscalation,
    AcceptEscalation,
    SetDataAccess,
    Resolve,
}

impl CaseAction {
    /// What `command` asks to do to a case, as far as access is concerned; `None` for the
    /// commands no caller issues on an existing case (opening has a rule of its own, the
    /// timed ones are the system's).
    pub fn of(command: &SupportCaseCommand) -> Option<Self> {
        use SupportCaseCommand as C;
        Some(match command {
            C::Comment(comment) if comment.visibility == Visibility::Internal => {
                Self::CommentInternal
            }
            C::Comment(_) => Self::Comment,
            C::RequestInfo(_) => Self::RequestInfo,
            C::Assign(_) => Self::Assign,
            C::StartInvestigation(_) => Self::Investigate,
            C::ChangePriority(_) => Self::ChangePriority,
            C::AddParticipant(_) | C::RemoveParticipant(_) => Self::ManageParticipants,
            C::AddAttachment(_) => Self::Attach,
            C::RequestEscalation(_) => Self::RequestEscalation,
            C::AcceptEscalation(_) => Self::AcceptEscalation,
            C::SetDataAccess(_) => Self::SetDataAccess,
            C::Resolve(_) => Self::Resolve,
            C::Open(_)
            | C::AutoResolve(_)
            | C::Close(_)
            | C::RaiseSlaWarning(_)
            | C::RecordSlaBreach(_) => return None,
        })
    }
}

/// Whether `principal` may do `action` on a case it sees; the refusal says why. The domain
/// checks the same role rules again (as 422 `not_allowed`) in case an edge forgets one.
pub fn may(principal: &Principal, action: CaseAction) -> Result<(), &'static str> {
    use CaseAction::*;
    let role = principal.role;
    if role == ActorRole::Auditor {
        return Err("auditors read; they do not change cases");
    }
    let staff = role.is_staff();
    let customer_side = role.is_customer_side();
    let allowed = match action {
        Comment | ManageParticipants | Attach | Resolve => staff || customer_side,
        CommentInternal => staff,
        RequestInfo | Assign | Investigate | ChangePriority | AcceptEscalation => staff,
        RequestEscalation | SetDataAccess => customer_side,
    };
    if allowed {
        return Ok(());
    }
    Err(match action {
        CommentInternal => "only support staff write internal comments",
        RequestInfo => "only support staff ask the customer for information",
        Assign => "only support staff assign cases",
        Investigate => "only support staff investigate cases",
        ChangePriority => "only support staff change the priority",
        AcceptEscalation => "only support staff accept an escalation",
        RequestEscalation => "only the customer side requests an escalation",
        SetDataAccess => "only the customer side grants or revokes access to its data",
        Comment | ManageParticipants | Attach | Resolve => {
            "only support staff and the customer side act on cases"
        }
    })
}

/// The cases a principal sees, as a list query filters them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaseScope {
    /// Staff and auditors.
    All,
    /// A customer: their org's cases they requested or follow, or all of them as org admin.
    Customer {
        org: String,
        user: String,
        org_admin: bool,
    },
    /// A partner: the cases of the orgs where its reach allows `access_cases`.
    Orgs(Vec<String>),
    /// Nobody's cases (a partner without `access_cases`, a customer without an org).
    Nothing,
}

/// The [`CaseScope`] of `principal`; must agree with [`sees_case`].
pub fn case_scope(principal: &Principal) -> CaseScope {
    match principal.role {
        ActorRole::Agent | ActorRole::Admin | ActorRole::Auditor | ActorRole::System => {
            CaseScope::All
        }
        ActorRole::Customer => match &principal.org_id {
            Some(org) => CaseScope::Customer {
                org: org.clone(),
                user: principal.user.clone(),
                org_admin: principal.org_admin,
            },
            None => CaseScope::Nothing,
        },
        ActorRole::Partner => match principal.reach.orgs(PartnerScope::AccessCases) {
            orgs if orgs.is_empty() => CaseScope::Nothing,
            orgs => CaseScope::Orgs(orgs),
        },
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::access::PartnerReach;
    use crate::auth::SCOPE_ACCESS_CASES;

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
            reach: PartnerReach::default(),
        }
    }

    /// A partner whose token has `access_cases`, with relationships granting `access_cases`
    /// in `orgs`.
    fn partner_reaching(orgs: &[&str]) -> Principal {
        let mut partner = principal(ActorRole::Partner, "pat@partner.test", None, false);
        partner.reach = PartnerReach::new(
            &partner.scopes,
            orgs.iter()
                .map(|o| (o.to_string(), vec![SCOPE_ACCESS_CASES.to_string()])),
        );
        partner
    }

    const CASE: CaseAudience<'static> = CaseAudience {
        org_id: "acme",
        requester: "Ann@acme.test",
        participants: &[],
    };

    #[test]
    fn a_requester_sees_their_case_whatever_the_case_of_their_address() {
        let ann = principal(ActorRole::Customer, "ann@ACME.test", Some("acme"), false);
        assert!(sees_case(&ann, CASE));
    }

    #[test]
    fn another_user_of_the_same_org_does_not_see_it_unless_org_admin() {
        let bob = principal(ActorRole::Customer, "bob@acme.test", Some("acme"), false);
        assert!(!sees_case(&bob, CASE));
        let admin = principal(ActorRole::Customer, "bob@acme.test", Some("acme"), true);
        assert!(sees_case(&admin, CASE));
    }

    #[test]
    fn an_org_admin_of_another_org_does_not_see_it() {
        let other = principal(ActorRole::Customer, "eve@other.test", Some("other"), true);
        assert!(!sees_case(&other, CASE));
    }

    #[test]
    fn a_participant_sees_the_case_of_their_org() {
        let carl = principal(ActorRole::Customer, "Carl@acme.test", Some("acme"), false);
        let participants = vec!["carl@acme.test".to_string()];
        let case = CaseAudience {
            participants: &participants,
            ..CASE
        };
        assert!(sees_case(&carl, case));
        let elsewhere = principal(ActorRole::Customer, "carl@acme.test", Some("other"), false);
        assert!(!sees_case(&elsewhere, case));
    }

    #[test]
    fn auditors_see_everything_and_do_nothing() {
        let audrey = principal(ActorRole::Auditor, "audrey@support.test", None, false);
        assert!(sees_case(&audrey, CASE));
        assert!(sees_internal(&audrey));
        assert!(may(&audrey, CaseAction::Comment).is_err());
    }

    #[test]
    fn the_customer_side_and_staff_have_their_own_actions() {
        let ann = principal(ActorRole::Customer, "ann@acme.test", Some("acme"), false);
        let pat = principal(ActorRole::Partner, "pat@partner.test", None, false);
        let sam = principal(ActorRole::Agent, "sam@support.test", None, false);
        for action in [CaseAction::RequestEscalation, CaseAction::SetDataAccess] {
            assert!(may(&ann, action).is_ok());
            assert!(may(&pat, action).is_ok());
            assert!(may(&sam, action).is_err());
        }
        for action in [
            CaseAction::Assign,
            CaseAction::RequestInfo,
            CaseAction::CommentInternal,
        ] {
            assert!(may(&ann, action).is_err());
            assert!(may(&pat, action).is_err());
            assert!(may(&sam, action).is_ok());
        }
        assert!(may(&ann, CaseAction::Resolve).is_ok());
        assert!(!sees_internal(&ann) && !sees_internal(&pat) && sees_internal(&sam));
    }

    #[test]
    fn the_list_scope_agrees_with_who_sees_a_case() {
        let partner = partner_reaching(&["acme"]);
        assert_eq!(case_scope(&partner), CaseScope::Orgs(vec!["acme".into()]));
        let mut unscoped = partner_reaching(&["acme"]);
        unscoped.scopes.clear();
        unscoped.reach = PartnerReach::new(
            &unscoped.scopes,
            [("acme".to_string(), vec![SCOPE_ACCESS_CASES.to_string()])],
        );
        assert_eq!(case_scope(&unscoped), CaseScope::Nothing);
        let admin = principal(ActorRole::Customer, "boss@acme.test", Some("acme"), true);
        assert_eq!(
            case_scope(&admin),
            CaseScope::Customer {
                org: "acme".into(),
                user: "boss@acme.test".into(),
                org_admin: true
            }
        );
    }

    #[test]
    fn a_partner_sees_cases_only_of_orgs_whose_relationship_allows_access_cases() {
        assert!(sees_case(&partner_reaching(&["acme"]), CASE));
        assert!(!sees_case(&partner_reaching(&["other"]), CASE));
        assert!(!sees_case(&partner_reaching(&[]), CASE));
        assert!(may_open_case_for(&partner_reaching(&["acme"]), "acme"));
        assert!(!may_open_case_for(&partner_reaching(&["acme"]), "other"));
    }
}
