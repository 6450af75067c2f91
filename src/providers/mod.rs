//! Mail-server providers: the adapters that implement `sync::port` in one protocol each
//! (EWS today; Microsoft Graph beside it). `sync` never names them; the daemon picks one per
//! profile through [`crate::sync::port::Connector`].

pub mod ews;
