use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::commands::{AddComment, OpenCase, SupportCaseCommand};
use super::error::CaseError;
use super::events::{CaseOpened, CommentAdded, SupportCaseEvent, Visibility};
use super::CaseServices;

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
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Investigating => "investigating",
            Self::WaitingForCustomer => "waiting_for_customer",
            Self::Resolved => "resolved",
            Self::Closed => "closed",
        }
    }
}

/// The write-side state of one case: only what the rules need to decide.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SupportCase {
    pub id: Option<Uuid>,
    pub key: String,
    pub org_id: String,
    pub requester: String,
    pub product: String,
    pub summary: String,
    pub impact: u8,
    pub status: CaseStatus,
    pub opened_at: Option<DateTime<Utc>>,
    pub first_response_due: Option<DateTime<Utc>>,
    pub comments: u32,
}

impl SupportCase {
    pub fn exists(&self) -> bool {
        self.id.is_some()
    }

    fn ensure_exists(&self) -> Result<(), CaseError> {
        if self.exists() {
            Ok(())
        } else {
            Err(CaseError::NotFound)
        }
    }

    fn ensure_not_closed(&self) -> Result<(), CaseError> {
        if self.status == CaseStatus::Closed {
            Err(CaseError::Closed)
        } else {
            Ok(())
        }
    }

    async fn open(
        &mut self,
        cmd: OpenCase,
        services: &CaseServices,
        sink: &EventSink<Self>,
    ) -> Result<(), CaseError> {
        if self.exists() {
            return Err(CaseError::AlreadyOpened);
        }
        let summary = cmd.summary.trim().to_string();
        if summary.is_empty() || summary.chars().count() > 255 {
            return Err(CaseError::InvalidSummary);
        }
        if !(1..=4).contains(&cmd.impact) {
            return Err(CaseError::InvalidImpact);
        }
        for (field, value) in [
            ("org_id", &cmd.org_id),
            ("product", &cmd.product),
            ("requester", &cmd.requester),
        ] {
            if value.trim().is_empty() {
                return Err(CaseError::Required(field));
            }
        }
        let now = services.clock.now();
        let due = now + services.policy.first_response_target(cmd.impact);
        let event = SupportCaseEvent::CaseOpened(CaseOpened {
            case_id: cmd.case_id,
            key: cmd.key,
            org_id: cmd.org_id,
            requester: cmd.requester,
            product: cmd.product,
            summary,
            description: cmd.description,
            impact: cmd.impact,
            opened_by: cmd.opened_by,
            opened_at: now,
            first_response_due: due,
        });
        sink.write(event, self).await;
        Ok(())
    }

    async fn comment(
        &mut self,
        cmd: AddComment,
        services: &CaseServices,
        sink: &EventSink<Self>,
    ) -> Result<(), CaseError> {
        self.ensure_exists()?;
        self.ensure_not_closed()?;
        if cmd.body.trim().is_empty() {
            return Err(CaseError::EmptyComment);
        }
        if cmd.visibility == Visibility::Internal && !cmd.author.role.is_staff() {
            return Err(CaseError::InternalCommentNotAllowed);
        }
        let event = SupportCaseEvent::CommentAdded(CommentAdded {
            comment_id: cmd.comment_id,
            author: cmd.author,
            body: cmd.body,
            visibility: cmd.visibility,
            at: services.clock.now(),
        });
        sink.write(event, self).await;
        Ok(())
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
        match command {
            SupportCaseCommand::Open(cmd) => self.open(cmd, services, sink).await,
            SupportCaseCommand::Comment(cmd) => self.comment(cmd, services, sink).await,
        }
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
                self.status = CaseStatus::Open;
                self.opened_at = Some(e.opened_at);
                self.first_response_due = Some(e.first_response_due);
            }
            SupportCaseEvent::CommentAdded(_) => {
                self.comments += 1;
            }
        }
    }
}
