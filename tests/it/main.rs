//! Integration tests: the public interface (HTTP and the CLI) exercised as users do.

mod batch;
mod cache;
mod cli;
mod common;
mod concurrency;
mod crash;
mod health;
mod historical;
mod materialize;
mod online;
mod openapi;
mod push;
mod registry;
mod safety;
mod shutdown;
mod tables;
