//! exsync: server-side synchronization of Exchange mailboxes (EWS) with a Postgres database.
//!
//! Module map (dependency direction is one-way, see `docs/conventions.md`):
//! `main → cli → app → {scheduler, health, telemetry, config}`; `scheduler → {sync, store, domain}`;
//! `sync → {ews, store, domain}`; `store → domain`; `fake_exchange → ews`;
//! `ews` and `domain` import nothing above them.
