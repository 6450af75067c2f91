//! One pass for one mailbox: incoming email, outgoing email, appointments / contacts / tasks.
//!
//! Owns the sync decisions (what to import, what to send, how to resolve conflicts) and the
//! reaction to every failure, decided by error type. Must not let SOAP types leak into its
//! decisions: it speaks to Exchange through a narrow adapter in domain words.

pub mod plan;
