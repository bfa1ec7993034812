//! Development tools, not part of the service: `cantina-notify demo`. Kept in the library because the binary's
//! `demo` command runs it; re-exported at their old paths.

pub mod demo;
