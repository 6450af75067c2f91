//! EWS: the wire model, the codec and the client. (Temporary map until the codec lands.)

pub mod ntlm;
pub mod oauth;
pub mod transport;
