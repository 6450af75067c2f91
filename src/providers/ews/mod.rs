//! The EWS provider: `sync::port` spoken as SOAP to Exchange (on premises or Online).
//! Every EWS type stops here; `sync` sees domain words only.

pub mod adapter;
pub mod clients;
