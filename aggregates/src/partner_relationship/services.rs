//! What a relationship needs from outside the domain, handed to every command.

use std::sync::Arc;

use crate::Clock;

/// What a relationship needs from outside the domain: the time.
#[derive(Debug, Clone)]
pub struct RelationshipServices {
    pub clock: Arc<dyn Clock>,
}

impl RelationshipServices {
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self { clock }
    }
}
