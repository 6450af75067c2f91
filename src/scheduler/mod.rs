//! Who runs when: claiming due mailboxes, per-profile connection limits, worker lifecycle.
//!
//! Owns the scheduling loop and the limiters. Must not speak EWS itself (it hands claimed
//! mailboxes to `sync`) and must never wait on one profile's full budget.

pub mod limits;
