//! Process managers: projections that react to events by issuing commands.
//!
//! They run in the projection runner like any read model (one active runner per process
//! manager across processes, a checkpoint moved only after the batch's commands went through),
//! so a crash re-delivers a batch rather than losing it. Re-delivery is made harmless by the
//! commands themselves: every command a process manager issues is idempotent (deterministic
//! ids, refused a second time by the aggregate), and a refusal of that kind counts as done.

pub mod collections;
pub mod partner_handover;
