//! EWS operations (messages.xsd), one module per operation, and the machinery they share:
//! response-message envelopes in both directions.
