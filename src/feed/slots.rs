//! Open event streams: at most [`STREAMS_PER_TOKEN`] per token at once, and all of them end
//! when the server shuts down (a graceful shutdown waits for open responses).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// Most event streams one token holds open at once.
pub const STREAMS_PER_TOKEN: usize = 4;

#[derive(Debug, Default)]
pub struct StreamSlots {
    open: Mutex<HashMap<Uuid, usize>>,
    /// Cancelled when the server shuts down: every stream ends.
    pub stop: CancellationToken,
}

/// One open stream; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot {
    slots: Arc<StreamSlots>,
    token: Uuid,
}

impl StreamSlots {
    /// A slot for `token`, or `None` when it holds [`STREAMS_PER_TOKEN`] already.
    pub fn take(self: &Arc<Self>, token: Uuid) -> Option<Slot> {
        let mut open = lock(&self.open);
        let count = open.entry(token).or_default();
        if *count >= STREAMS_PER_TOKEN {
            return None;
        }
        *count += 1;
        Some(Slot {
            slots: Arc::clone(self),
            token,
        })
    }

    /// Streams open for `token`.
    pub fn open(&self, token: Uuid) -> usize {
        lock(&self.open).get(&token).copied().unwrap_or_default()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = lock(&self.slots.open);
        if let Some(count) = open.get_mut(&self.token) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.token);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_holds_a_bounded_number_of_streams_and_a_closed_one_frees_its_slot() {
        let slots = Arc::new(StreamSlots::default());
        let token = Uuid::from_u128(1);
        let held: Vec<Slot> = (0..STREAMS_PER_TOKEN)
            .map(|_| slots.take(token).expect("a free slot"))
            .collect();
        assert!(slots.take(token).is_none());
        assert!(slots.take(Uuid::from_u128(2)).is_some());
        drop(held);
        assert_eq!(slots.open(token), 0);
        assert!(slots.take(token).is_some());
    }
}
