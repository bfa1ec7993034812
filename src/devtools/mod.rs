//! Development tools kept in the library because the binary's `demo` subcommand, the integration tests, the
//! examples and the benchmark share them. They are not part of the service: nothing on the production path uses
//! them, and they are hidden from the API documentation.

// `pub mod demo;` (the `demo` subcommand) goes here.
pub mod pg_cluster;
