//! HTTP handlers, one module per kind of request.

pub mod admin;
pub mod alerts;
pub mod bubbleup;
pub mod events;
pub mod ops;
pub mod otlp;
pub mod pipeline;
pub mod prometheus;
pub mod query;
pub mod query_data;
pub mod remote_write;
pub mod rollups;
pub mod schema;
pub mod sources;
pub mod sql;
pub mod traces;
pub mod web;
