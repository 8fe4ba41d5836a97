//! Integration tests: the public interface (HTTP and the CLI) exercised as users do.

mod auth;
mod batch;
mod cache;
mod cli;
mod common;
mod concurrency;
mod crash;
mod faults;
mod floor;
mod fold;
mod fuzz;
mod health;
mod historical;
mod limits;
mod materialize;
mod online;
mod openapi;
mod push;
mod readers;
mod registry;
mod safety;
mod shutdown;
mod tables;
