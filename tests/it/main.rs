//! Integration tests: the public interface (HTTP and the CLI) exercised as users do.

mod common;
mod openapi;
