//! featurestore: a lightweight, file-system feature store with a REST API.
//!
//! One binary serves feature tables stored as Parquet files
//! (`feature_store/features/<group>/<name>.parquet`) over a documented REST API.
//!
//! # Layout
//! Dependencies point one way: `cli → server → api → store → storage → model`.
//! - [`model`]: validated names and other pure types; no I/O.
//! - [`cache`]: the memory (LRU + TTL) and disk (sled) tiers in front of Parquet.
//! - [`online`]: the per-view index of latest values behind `/get-online-features`.
//! - [`offline`]: the point-in-time (ASOF) join behind historical retrieval; pure, no I/O.
//! - [`history`]: a view's decoded history per table version, grouped by key and ordered in
//!   time, and the bounded cache that keeps it between requests; pure, no I/O.
//! - [`registry`]: entities, feature views and feature services.
//! - [`storage`]: the Parquet tree: atomic writes with type narrowing, projected and paged
//!   reads, the catalog of open tables. The only module that touches table files.
//! - [`store`]: the facade the API and CLI call; runs blocking work off the event loop.
//! - [`api`]: actix-web handlers, problem+json errors and the OpenAPI document.
//! - [`server`]: binds the API, Swagger UI and `/openapi.json` to a listener.
//! - [`watch`]: notices tables other tools add, replace or remove.
//! - [`bus`]: the change bus, telling other replicas (through Redis) what this one changed.
//! - [`auth`]: the optional bearer tokens: `[auth]`, scopes, token generation and checks.
//! - [`console`]: the web console's assets (HTML, CSS, JavaScript), compiled in; `api` serves
//!   them at `/ui/`.
//! - [`config`]: the layered configuration; each layer owns its own section's struct.
//! - [`demo`]: the deterministic movie-recommendation demo data.
//! - [`cli`]: the `featurestore` command.
#![warn(missing_docs)]

pub mod api;
pub mod auth;
pub mod bus;
pub mod cache;
pub mod cli;
pub mod config;
pub mod console;
pub mod demo;
pub mod history;
pub mod memory;
pub mod model;
pub mod offline;
pub mod online;
pub mod poll;
pub mod registry;
pub mod server;
pub mod stats;
pub mod storage;
pub mod store;
pub mod watch;
