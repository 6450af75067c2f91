//! Operator commands: what an administrator runs beside the daemon (declare rows, test a
//! mailbox, explain a state, try the product, measure it). Each is a library module behind
//! one `exsync` subcommand; none is part of the running service.

pub mod apply;
pub mod bench;
pub mod demo;
pub mod explain;
pub mod probe;
