//! `/v1/cases`: support cases.
//!
//! - [`opening`]: opening a case, and commenting (a reply to a closed case opens a follow-up);
//! - [`commands`]: every other command on an existing case, a few lines each;
//! - [`attachments`]: uploading (a bounded body, bytes outside the log) and downloading files;
//! - [`reads`]: the list, the detail (and time travel) and the history;
//! - [`run`]: the one command path (access decided from the command, on the very state it is
//!   decided on), who sees a case, case keys;
//! - [`types`]: the request and response types.
//!
//! A case the caller may not see is 404, an action their role may not take on a case they see
//! is 403 (`crate::access::cases`), and the domain's own rules are 422.

mod attachments;
mod commands;
mod opening;
mod reads;
mod run;
pub mod sla;
pub mod types;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(opening::router())
        .merge(commands::router())
        .merge(reads::router())
        .merge(attachments::router())
}
