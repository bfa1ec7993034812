//! Integration tests over a real PostgreSQL: `DATABASE_URL` when set (the role needs CREATEDB), otherwise one
//! throwaway cluster per test run started from the installed server binaries. Every test gets a fresh database.

mod helpers;

mod alerts;
mod bad_input;
mod binary;
mod channel_states;
mod channels_e2e;
mod cluster;
mod dedup_key;
mod dispatch;
mod fallback;
mod family;
mod http;
mod levers;
mod migrate;
mod ops;
mod pg_tls;
mod pipeline;
mod preferences;
mod provider_bytes;
mod resilience;
mod roles;
mod scheduler;
mod slow_clients;
mod spending;
mod summary;
mod webhooks;
