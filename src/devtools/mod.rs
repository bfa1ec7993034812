//! Development tools kept in the library because the binary's `demo` subcommand, the integration tests, the
//! examples and the benchmark share them. They are not part of the service: nothing on the production path uses
//! them, and they are hidden from the API documentation. Re-exported at their old paths.

pub mod demo;
pub mod pg_cluster;
