//! What the nodes of a cluster say to each other besides query stages (those
//! are datafusion-distributed's): ingest nodes serve their unsealed rows to
//! query nodes as Arrow Flight streams on the node's cluster port.
//!
//! ```text
//!  query node                                   ingest node (cluster port)
//!  catalog: snapshot of dataset D ──DoGet──────► BufferFlight: D's rows being
//!   + rows after the manifest's                  sealed and buffered, each
//!     sealed sequence of each node ◄─stream──── batch tagged with its group's
//!   (engine::remote_buffers)                     highest WAL sequence
//! ```

mod buffer_client;
mod buffer_service;
mod wire;

pub use buffer_client::FlightBuffers;
pub use buffer_service::BufferFlight;
