//! Integration tests: the public interface (HTTP and the CLI) exercised as users do.

mod auth;
mod batch;
mod cache;
mod cli;
mod common;
mod floor;
mod health;
mod historical;
mod materialize;
mod online;
mod openapi;
mod push;
mod registry;
mod safety;
mod tables;
