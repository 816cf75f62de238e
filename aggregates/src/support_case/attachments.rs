//! Files attached to a case: only their description (name, size, type, digest) is an
//! event; the bytes are stored outside the domain.

use super::checks::{check_len, require_participant_role, MAX_NAME};
use super::commands::*;
use super::error::CaseError;
use super::events::*;
use super::services::CaseServices;
use super::state::SupportCase;

impl SupportCase {
    pub(super) fn add_attachment(
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
}
