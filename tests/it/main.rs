//! exsync's integration tests: one binary, real Postgres (one fresh database per test via
//! `sqlx::test`) and, from issue 2 on, the project's own fake Exchange over real HTTP.
//! Run them with `scripts/test.sh` (it sets DATABASE_URL and starts Postgres if needed).

mod act_create_rules;
mod apply_rules;
mod bench_rules;
mod config_rules;
mod connection_rules;
mod credentials_at_rest;
mod exchange_answers_rules;
mod failure_rules;
mod fake_answers_rules;
mod fake_exchange_rules;
mod fake_graph_rules;
mod fake_graph_subscription_rules;
mod fake_meeting_rules;
mod fake_streaming_rules;
mod fake_wire_rules;
mod graph_backfill_rules;
mod graph_notify_rules;
mod graph_rules;
mod graph_series_rules;
mod operate_rules;
mod package_rules;
mod pass_log_rules;
mod scheduler_rules;
mod schema_rules;
mod scope_rules;
mod send_journal_rules;
mod sending_rules;
mod store_rules;
mod streaming_rules;
mod support;
mod sync_rules;
