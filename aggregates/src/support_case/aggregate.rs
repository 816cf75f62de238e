use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::commands::*;
use super::error::CaseError;
use super::events::*;
use super::policy::human_duration;
use super::CaseServices;
use crate::{Actor, ActorRole};

/// Longest description or comment body, in characters.
pub const MAX_TEXT: usize = 32_768;
/// Longest attachment name, product version, phone number or escalation reason.
const MAX_NAME: usize = 255;
const MAX_PHONE: usize = 64;
const MAX_REASON: usize = 2_000;

/// Where a case stands. Snake case on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    #[default]
    Open,
    Investigating,
    WaitingForCustomer,
    Resolved,
    Closed,
}

impl CaseStatus {
    pub const ALL: [Self; 5] = [
        Self::Open,
        Self::Investigating,
        Self::WaitingForCustomer,
        Self::Resolved,
        Self::Closed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Investigating => "investigating",
            Self::WaitingForCustomer => "waiting_for_customer",
            Self::Resolved => "resolved",
            Self::Closed => "closed",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where an escalation stands: the customer side asks, support accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Escalation {
    #[default]
    None,
    Requested,
    Escalated,
}

impl Escalation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Requested => "requested",
            Self::Escalated => "escalated",
        }
    }
}

/// The write-side state of one case: only what the rules (and the access checks run on the
/// loaded state) need to decide.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SupportCase {
    pub id: Option<Uuid>,
    pub key: String,
    pub org_id: String,
    pub requester: String,
    pub product: String,
    pub summary: String,
    pub impact: u8,
    pub priority: u8,
    pub status: CaseStatus,
    pub opened_at: Option<DateTime<Utc>>,
    pub first_response_due: Option<DateTime<Utc>>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub assignee: Option<String>,
    /// Lower-case e-mail addresses.
    pub participants: Vec<String>,
    pub escalation: Escalation,
    pub data_access: bool,
    /// Set while `waiting_for_customer`: when support asked.
    pub waiting_since: Option<DateTime<Utc>>,
    /// Set while `resolved` (and kept once `closed`).
    pub resolved_at: Option<DateTime<Utc>>,
    pub comments: u32,
    /// Attachment ids, oldest first.
    pub attachments: Vec<Uuid>,
    /// The entitlement the case was opened under, for a follow-up case after it closes.
    pub entitlement_number: Option<String>,
    pub subscription_id: Option<Uuid>,
    /// The earlier case this one follows up.
    pub follow_up_of: Option<Uuid>,
}

/// Trims and lower-cases an e-mail address, refusing what cannot be one. Addresses compare
/// without regard to case everywhere in subdesk.
pub fn normalize_email(text: &str) -> Result<String, CaseError> {
    let email = text.trim().to_lowercase();
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(local, domain)| !local.is_empty() && !domain.is_empty())
        && email.matches('@').count() == 1
        && !email
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>,;:\"()[]\\".contains(c));
    if valid {
        Ok(email)
    } else {
        Err(CaseError::InvalidEmail(text.trim().to_string()))
    }
}

fn optional_text(
    value: Option<String>,
    field: &'static str,
    max: usize,
) -> Result<Option<String>, CaseError> {
    let value = value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty());
    match value {
        Some(v) if v.chars().count() > max => Err(CaseError::TooLong { field, max }),
        other => Ok(other),
    }
}

fn check_len(value: &str, field: &'static str, max: usize) -> Result<(), CaseError> {
    if value.chars().count() > max {
        Err(CaseError::TooLong { field, max })
    } else {
        Ok(())
    }
}

fn require_staff(actor: &Actor, rule: &'static str) -> Result<(), CaseError> {
    if actor.role.is_staff() {
        Ok(())
    } else {
        Err(CaseError::NotAllowed(rule))
    }
}

/// Staff and the customer side act on cases; auditors only read and the system only runs
/// the timed commands.
fn require_participant_role(actor: &Actor) -> Result<(), CaseError> {
    if actor.role.is_staff() || actor.role.is_customer_side() {
        Ok(())
    } else {
        Err(CaseError::NotAllowed(
            "only support staff and the customer side act on cases",
        ))
    }
}

fn require_system(actor: &Actor) -> Result<(), CaseError> {
    if actor.role == ActorRole::System {
        Ok(())
    } else {
        Err(CaseError::NotAllowed("only the system runs timed commands"))
    }
}

impl SupportCase {
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    /// Whether `email` follows the case as a participant.
    pub fn has_participant(&self, email: &str) -> bool {
        let email = email.trim();
        self.participants
            .iter()
            .any(|p| p.eq_ignore_ascii_case(email))
    }

    /// The live state every command but `Open` needs: opened and not closed.
    fn ensure_live(&self) -> Result<(), CaseError> {
        if !self.exists() {
            return Err(CaseError::NotFound);
        }
        if self.status == CaseStatus::Closed {
            return Err(CaseError::Closed);
        }
        Ok(())
    }

    fn invalid_status(&self, action: &'static str) -> CaseError {
        CaseError::InvalidStatus {
            action,
            status: self.status,
        }
    }

    /// Whether a public comment by `author` is support's first answer.
    fn first_response(&self, author: &Actor, visibility: Visibility) -> bool {
        author.role.is_staff()
            && visibility == Visibility::Public
            && self.first_response_at.is_none()
    }

    fn first_response_event(
        &self,
        comment_id: Uuid,
        by: &Actor,
        now: DateTime<Utc>,
    ) -> SupportCaseEvent {
        let due = self.first_response_due.unwrap_or(now);
        SupportCaseEvent::FirstResponseGiven(FirstResponseGiven {
            comment_id,
            by: by.clone(),
            due,
            breached: now > due,
            at: now,
        })
    }

    async fn write_all(&mut self, events: Vec<SupportCaseEvent>, sink: &EventSink<Self>) {
        for event in events {
            sink.write(event, self).await;
        }
    }

    fn open(&self, cmd: OpenCase, services: &CaseServices) -> Result<SupportCaseEvent, CaseError> {
        if self.exists() {
            return Err(CaseError::AlreadyOpened);
        }
        if !(cmd.opened_by.role.is_staff() || cmd.opened_by.role.is_customer_side()) {
            return Err(CaseError::NotAllowed(
                "only customers, partners and support staff open cases",
            ));
        }
        for (field, value) in [("org_id", &cmd.org_id), ("requester", &cmd.requester)] {
            if value.trim().is_empty() {
                return Err(CaseError::Required(field));
            }
        }
        let summary = cmd.summary.trim().to_string();
        if summary.is_empty() || summary.chars().count() > 255 {
            return Err(CaseError::InvalidSummary);
        }
        if !(1..=4).contains(&cmd.impact) {
            return Err(CaseError::InvalidImpact);
        }
        check_len(&cmd.description, "description", MAX_TEXT)?;
        let product_version = optional_text(cmd.product_version, "product_version", MAX_NAME)?;
        let phone = optional_text(cmd.phone, "phone", MAX_PHONE)?;

        let opener = cmd.requester.trim().to_string();
        let requester = match &cmd.on_behalf_of {
            Some(reporter) if !reporter.trim().is_empty() => normalize_email(reporter)?,
            _ => opener.clone(),
        };
        // Distinct addresses, found with a set; the cap is checked as the list grows, so a
        // long list costs no more than the cap.
        let max = services.policy.max_participants;
        let mut participants: Vec<String> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut follow = |email: String| {
            if !email.eq_ignore_ascii_case(&requester) && seen.insert(email.clone()) {
                participants.push(email);
            }
            if participants.len() > max {
                Err(CaseError::TooManyParticipants { max })
            } else {
                Ok(())
            }
        };
        for email in &cmd.participants {
            follow(normalize_email(email)?)?;
        }
        // Someone on the customer side who opens a case for a colleague keeps following it.
        if cmd.opened_by.role.is_customer_side() && !opener.eq_ignore_ascii_case(&requester) {
            follow(opener.to_lowercase())?;
        }

        let entitlement = match cmd.entitlement {
            EntitlementLookup::NotGiven if services.policy.require_entitlement => {
                return Err(CaseError::EntitlementRequired)
            }
            EntitlementLookup::NotGiven => None,
            EntitlementLookup::NotFound => return Err(CaseError::EntitlementNotOfOrg),
            EntitlementLookup::Found(facts) => {
                // Checked before the status, so that nothing is told about another org's
                // entitlement.
                if facts.org_id != cmd.org_id {
                    return Err(CaseError::EntitlementNotOfOrg);
                }
                if !matches!(facts.status.as_str(), "active" | "non_renewing") {
                    return Err(CaseError::EntitlementInactive {
                        status: facts.status,
                    });
                }
                Some(facts)
            }
        };
        let product = match (cmd.product.trim(), &entitlement) {
            ("", Some(facts)) => facts.product.clone(),
            ("", None) => return Err(CaseError::Required("product")),
            (named, _) => named.to_string(),
        };
        check_len(&product, "product", MAX_NAME)?;
        if let Some(earlier) = &cmd.follow_up_of {
            if earlier.org_id != cmd.org_id || earlier.case_id == cmd.case_id {
                return Err(CaseError::FollowUpOfAnotherOrg);
            }
        }

        let now = services.clock.now();
        Ok(SupportCaseEvent::CaseOpened(CaseOpened {
            case_id: cmd.case_id,
            key: cmd.key,
            org_id: cmd.org_id,
            requester,
            product,
            product_version,
            entitlement_number: entitlement.as_ref().map(|e| e.number.clone()),
            subscription_id: entitlement.as_ref().map(|e| e.subscription_id),
            summary,
            description: cmd.description,
            impact: cmd.impact,
            priority: cmd.impact,
            participants,
            phone,
            data_access_consent: cmd.data_access_consent,
            follow_up_of: cmd.follow_up_of.map(|earlier| earlier.case_id),
            opened_by: cmd.opened_by,
            opened_at: now,
            first_response_due: now + services.policy.first_response_target(cmd.impact),
        }))
    }

    fn comment(
        &self,
        cmd: AddComment,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_participant_role(&cmd.author)?;
        if cmd.body.trim().is_empty() {
            return Err(CaseError::EmptyComment);
        }
        check_len(&cmd.body, "body", MAX_TEXT)?;
        if cmd.visibility == Visibility::Internal && !cmd.author.role.is_staff() {
            return Err(CaseError::InternalCommentNotAllowed);
        }
        let now = services.clock.now();
        let customer_side = cmd.author.role.is_customer_side();
        let mut follow_up = Vec::new();
        if self.first_response(&cmd.author, cmd.visibility) {
            follow_up.push(self.first_response_event(cmd.comment_id, &cmd.author, now));
        }
        match self.status {
            CaseStatus::WaitingForCustomer if customer_side => {
                follow_up.push(SupportCaseEvent::CustomerResponded(CustomerResponded {
                    comment_id: cmd.comment_id,
                    by: cmd.author.clone(),
                    waiting_since: self.waiting_since.unwrap_or(now),
                    at: now,
                }));
            }
            CaseStatus::Resolved if customer_side => {
                let resolved_at = self.resolved_at.unwrap_or(now);
                let window = services.policy.reopen_window;
                if now - resolved_at > window {
                    return Err(CaseError::ReopenWindowPassed {
                        window: human_duration(window),
                    });
                }
                follow_up.push(SupportCaseEvent::CaseReopened(CaseReopened {
                    comment_id: cmd.comment_id,
                    by: cmd.author.clone(),
                    resolved_at,
                    at: now,
                }));
            }
            _ => {}
        }
        let mut events = vec![SupportCaseEvent::CommentAdded(CommentAdded {
            comment_id: cmd.comment_id,
            author: cmd.author,
            body: cmd.body,
            visibility: cmd.visibility,
            at: now,
        })];
        events.extend(follow_up);
        Ok(events)
    }

    fn request_info(
        &self,
        cmd: RequestInfo,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_staff(
            &cmd.by,
            "only support staff ask the customer for information",
        )?;
        if self.status == CaseStatus::Resolved {
            return Err(self.invalid_status("request information on"));
        }
        if cmd.body.trim().is_empty() {
            return Err(CaseError::EmptyComment);
        }
        check_len(&cmd.body, "body", MAX_TEXT)?;
        let now = services.clock.now();
        let mut events = vec![SupportCaseEvent::CommentAdded(CommentAdded {
            comment_id: cmd.comment_id,
            author: cmd.by.clone(),
            body: cmd.body,
            visibility: Visibility::Public,
            at: now,
        })];
        if self.first_response(&cmd.by, Visibility::Public) {
            events.push(self.first_response_event(cmd.comment_id, &cmd.by, now));
        }
        events.push(SupportCaseEvent::CustomerInfoRequested(
            CustomerInfoRequested {
                comment_id: cmd.comment_id,
                by: cmd.by,
                at: now,
            },
        ));
        Ok(events)
    }

    fn assign(
        &self,
        cmd: AssignCase,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_staff(&cmd.by, "only support staff assign cases")?;
        let assignee = normalize_email(&cmd.assignee)?;
        if self.assignee.as_deref() == Some(assignee.as_str()) {
            return Ok(Vec::new());
        }
        Ok(vec![SupportCaseEvent::CaseAssigned(CaseAssigned {
            assignee,
            previous: self.assignee.clone(),
            by: cmd.by,
            at: services.clock.now(),
        })])
    }

    fn start_investigation(
        &self,
        cmd: StartInvestigation,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_staff(&cmd.by, "only support staff investigate cases")?;
        if !matches!(
            self.status,
            CaseStatus::Open | CaseStatus::WaitingForCustomer
        ) {
            return Err(self.invalid_status("start investigating"));
        }
        Ok(vec![SupportCaseEvent::InvestigationStarted(
            InvestigationStarted {
                by: cmd.by,
                at: services.clock.now(),
            },
        )])
    }

    fn change_priority(
        &self,
        cmd: ChangePriority,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_staff(&cmd.by, "only support staff change the priority")?;
        if !(1..=4).contains(&cmd.priority) {
            return Err(CaseError::InvalidPriority);
        }
        if cmd.priority == self.priority {
            return Ok(Vec::new());
        }
        let now = services.clock.now();
        let opened_at = self.opened_at.unwrap_or(now);
        Ok(vec![SupportCaseEvent::PriorityChanged(PriorityChanged {
            from: self.priority,
            to: cmd.priority,
            first_response_due: opened_at + services.policy.first_response_target(cmd.priority),
            by: cmd.by,
            at: now,
        })])
    }

    fn add_participant(
        &self,
        cmd: AddParticipant,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_participant_role(&cmd.by)?;
        let email = normalize_email(&cmd.email)?;
        if self.has_participant(&email) || self.requester.eq_ignore_ascii_case(&email) {
            return Ok(Vec::new());
        }
        let max = services.policy.max_participants;
        if self.participants.len() >= max {
            return Err(CaseError::TooManyParticipants { max });
        }
        Ok(vec![SupportCaseEvent::ParticipantAdded(ParticipantAdded {
            email,
            by: cmd.by,
            at: services.clock.now(),
        })])
    }

    fn remove_participant(
        &self,
        cmd: RemoveParticipant,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_participant_role(&cmd.by)?;
        let email = normalize_email(&cmd.email)?;
        if !self.has_participant(&email) {
            return Ok(Vec::new());
        }
        Ok(vec![SupportCaseEvent::ParticipantRemoved(
            ParticipantRemoved {
                email,
                by: cmd.by,
                at: services.clock.now(),
            },
        )])
    }

    fn add_attachment(
        &self,
        cmd: AddAttachment,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_participant_role(&cmd.by)?;
        let name = cmd.name.trim().to_string();
        if name.is_empty() {
            return Err(CaseError::InvalidAttachment(
                "an attachment needs a file name",
            ));
        }
        check_len(&name, "name", MAX_NAME)?;
        if cmd.size == 0 {
            return Err(CaseError::InvalidAttachment(
                "an attachment must not be empty",
            ));
        }
        let max = services.policy.max_attachment_bytes;
        if cmd.size > max {
            return Err(CaseError::AttachmentTooLarge {
                size: cmd.size,
                max,
            });
        }
        let sha256 = cmd.sha256.trim().to_ascii_lowercase();
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(CaseError::InvalidAttachment(
                "the sha256 of an attachment is 64 hexadecimal digits",
            ));
        }
        let content_type = match cmd.content_type.trim() {
            "" => "application/octet-stream".to_string(),
            given => given.to_string(),
        };
        check_len(&content_type, "content_type", MAX_NAME)?;
        Ok(vec![SupportCaseEvent::AttachmentAdded(AttachmentAdded {
            attachment_id: cmd.attachment_id,
            name,
            size: cmd.size,
            content_type,
            sha256,
            by: cmd.by,
            at: services.clock.now(),
        })])
    }

    fn request_escalation(
        &self,
        cmd: RequestEscalation,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        if !cmd.by.role.is_customer_side() {
            return Err(CaseError::NotAllowed(
                "only the customer side requests an escalation",
            ));
        }
        if self.status == CaseStatus::Resolved {
            return Err(self.invalid_status("escalate"));
        }
        match self.escalation {
            Escalation::Requested => return Err(CaseError::EscalationPending),
            Escalation::Escalated => return Err(CaseError::AlreadyEscalated),
            Escalation::None => {}
        }
        let reason = cmd.reason.trim().to_string();
        check_len(&reason, "reason", MAX_REASON)?;
        Ok(vec![SupportCaseEvent::EscalationRequested(
            EscalationRequested {
                reason,
                by: cmd.by,
                at: services.clock.now(),
            },
        )])
    }

    fn accept_escalation(
        &self,
        cmd: AcceptEscalation,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_staff(&cmd.by, "only support staff accept an escalation")?;
        match self.escalation {
            Escalation::Requested => Ok(vec![SupportCaseEvent::CaseEscalated(CaseEscalated {
                by: cmd.by,
                at: services.clock.now(),
            })]),
            Escalation::Escalated => Err(CaseError::AlreadyEscalated),
            Escalation::None => Err(CaseError::NoEscalationPending),
        }
    }

    fn set_data_access(
        &self,
        cmd: SetDataAccess,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        if !cmd.by.role.is_customer_side() {
            return Err(CaseError::NotAllowed(
                "only the customer side grants or revokes access to its data",
            ));
        }
        if cmd.granted == self.data_access {
            return Ok(Vec::new());
        }
        let change = DataAccessChanged {
            by: cmd.by,
            at: services.clock.now(),
        };
        Ok(vec![if cmd.granted {
            SupportCaseEvent::DataAccessGranted(change)
        } else {
            SupportCaseEvent::DataAccessRevoked(change)
        }])
    }

    fn resolve(
        &self,
        cmd: ResolveCase,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_participant_role(&cmd.by)?;
        if self.status == CaseStatus::Resolved {
            return Err(self.invalid_status("resolve"));
        }
        Ok(vec![SupportCaseEvent::CaseResolved(CaseResolved {
            by: cmd.by,
            at: services.clock.now(),
        })])
    }

    /// The headline rule: resolved automatically only when it is waiting for the customer
    /// and has been for at least the policy's duration, judged from the case's own
    /// `CustomerInfoRequested` time. A timer that fires early, late (after a reply) or twice
    /// finds the case not due.
    fn auto_resolve(
        &self,
        cmd: AutoResolve,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_system(&cmd.by)?;
        let waiting_since = match (self.status, self.waiting_since) {
            (CaseStatus::WaitingForCustomer, Some(since)) => since,
            _ => {
                return Err(CaseError::NotDue(format!(
                    "the case is {}, not waiting for the customer",
                    self.status
                )))
            }
        };
        let now = services.clock.now();
        let waited = now - waiting_since;
        let policy = services.policy.auto_resolve_after;
        if waited < policy {
            return Err(CaseError::NotDue(format!(
                "the case has waited {} of the {} after which it is resolved automatically",
                human_duration(waited),
                human_duration(policy)
            )));
        }
        Ok(vec![SupportCaseEvent::CaseAutoResolved(CaseAutoResolved {
            waiting_since,
            waited_seconds: waited.num_seconds(),
            at: now,
        })])
    }

    fn close(
        &self,
        cmd: CloseCase,
        services: &CaseServices,
    ) -> Result<Vec<SupportCaseEvent>, CaseError> {
        self.ensure_live()?;
        require_system(&cmd.by)?;
        let resolved_at = match (self.status, self.resolved_at) {
            (CaseStatus::Resolved, Some(at)) => at,
            _ => {
                return Err(CaseError::NotDue(format!(
                    "the case is {}, not resolved",
                    self.status
                )))
            }
        };
        let now = services.clock.now();
        let policy = services.policy.close_after;
        if now - resolved_at < policy {
            return Err(CaseError::NotDue(format!(
                "the case has been resolved for {} of the {} after which it is closed",
                human_duration(now - resolved_at),
                human_duration(policy)
            )));
        }
        Ok(vec![SupportCaseEvent::CaseClosed(CaseClosed {
            resolved_at,
            at: now,
        })])
    }
}

impl Aggregate for SupportCase {
    const TYPE: &'static str = super::AGGREGATE_TYPE;
    type Command = SupportCaseCommand;
    type Event = SupportCaseEvent;
    type Error = CaseError;
    type Services = CaseServices;

    async fn handle(
        &mut self,
        command: Self::Command,
        services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        // Every rule is checked before anything is written: a refused command appends nothing.
        let events = match command {
            SupportCaseCommand::Open(cmd) => vec![self.open(cmd, services)?],
            SupportCaseCommand::Assign(cmd) => self.assign(cmd, services)?,
            SupportCaseCommand::StartInvestigation(cmd) => {
                self.start_investigation(cmd, services)?
            }
            SupportCaseCommand::Comment(cmd) => self.comment(cmd, services)?,
            SupportCaseCommand::RequestInfo(cmd) => self.request_info(cmd, services)?,
            SupportCaseCommand::ChangePriority(cmd) => self.change_priority(cmd, services)?,
            SupportCaseCommand::AddParticipant(cmd) => self.add_participant(cmd, services)?,
            SupportCaseCommand::RemoveParticipant(cmd) => self.remove_participant(cmd, services)?,
            SupportCaseCommand::AddAttachment(cmd) => self.add_attachment(cmd, services)?,
            SupportCaseCommand::RequestEscalation(cmd) => self.request_escalation(cmd, services)?,
            SupportCaseCommand::AcceptEscalation(cmd) => self.accept_escalation(cmd, services)?,
            SupportCaseCommand::SetDataAccess(cmd) => self.set_data_access(cmd, services)?,
            SupportCaseCommand::Resolve(cmd) => self.resolve(cmd, services)?,
            SupportCaseCommand::AutoResolve(cmd) => self.auto_resolve(cmd, services)?,
            SupportCaseCommand::Close(cmd) => self.close(cmd, services)?,
        };
        self.write_all(events, sink).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            SupportCaseEvent::CaseOpened(e) => {
                self.id = Some(e.case_id);
                self.key = e.key;
                self.org_id = e.org_id;
                self.requester = e.requester;
                self.product = e.product;
                self.summary = e.summary;
                self.impact = e.impact;
                self.priority = e.priority;
                self.status = CaseStatus::Open;
                self.opened_at = Some(e.opened_at);
                self.first_response_due = Some(e.first_response_due);
                self.participants = e.participants;
                self.data_access = e.data_access_consent;
                self.entitlement_number = e.entitlement_number;
                self.subscription_id = e.subscription_id;
                self.follow_up_of = e.follow_up_of;
            }
            SupportCaseEvent::CaseAssigned(e) => self.assignee = Some(e.assignee),
            SupportCaseEvent::InvestigationStarted(_) | SupportCaseEvent::CustomerResponded(_) => {
                self.status = CaseStatus::Investigating;
                self.waiting_since = None;
            }
            SupportCaseEvent::CommentAdded(_) => self.comments += 1,
            SupportCaseEvent::CustomerInfoRequested(e) => {
                self.status = CaseStatus::WaitingForCustomer;
                self.waiting_since = Some(e.at);
            }
            SupportCaseEvent::CaseReopened(_) => {
                self.status = CaseStatus::Investigating;
                self.resolved_at = None;
            }
            SupportCaseEvent::FirstResponseGiven(e) => self.first_response_at = Some(e.at),
            SupportCaseEvent::PriorityChanged(e) => {
                self.priority = e.to;
                self.first_response_due = Some(e.first_response_due);
            }
            SupportCaseEvent::ParticipantAdded(e) => self.participants.push(e.email),
            SupportCaseEvent::ParticipantRemoved(e) => {
                self.participants
                    .retain(|p| !p.eq_ignore_ascii_case(&e.email));
            }
            SupportCaseEvent::AttachmentAdded(e) => self.attachments.push(e.attachment_id),
            SupportCaseEvent::EscalationRequested(_) => self.escalation = Escalation::Requested,
            SupportCaseEvent::CaseEscalated(_) => self.escalation = Escalation::Escalated,
            SupportCaseEvent::DataAccessGranted(_) => self.data_access = true,
            SupportCaseEvent::DataAccessRevoked(_) => self.data_access = false,
            SupportCaseEvent::CaseResolved(CaseResolved { at, .. })
            | SupportCaseEvent::CaseAutoResolved(CaseAutoResolved { at, .. }) => {
                self.status = CaseStatus::Resolved;
                self.resolved_at = Some(at);
                self.waiting_since = None;
            }
            SupportCaseEvent::CaseClosed(_) => self.status = CaseStatus::Closed,
        }
    }
}
