//! `/v1/subscriptions`: subscriptions, their apps, contacts, site, billing account and
//! history.
//!
//! - [`create`]: buying one (who may sell to whom);
//! - [`commands`]: every command on an existing subscription, a few lines each;
//! - [`reads`]: the portal tabs' list, the detail (and time travel), the history;
//! - [`run`]: the one command path: the access action follows from the command and is checked
//!   on the very state the command is decided on (rules in [`crate::access::subscriptions`]);
//! - [`types`]: the request and response types.

mod commands;
mod create;
mod reads;
mod run;
pub mod types;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(create::router())
        .merge(reads::router())
        .merge(commands::router())
}
