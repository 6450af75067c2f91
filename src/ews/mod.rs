//! EWS: the wire model, the codec and the client. (Temporary map until the codec lands.)

pub mod ntlm;
pub mod ntlm_http;
pub mod oauth;
pub mod transport;
