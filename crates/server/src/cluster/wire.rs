//! The Flight messages of the buffer service: a JSON ticket naming a dataset,
//! a JSON header on the stream's schema message, and batches in the dataset's
//! full schema plus one column naming each row's group.

use quarry_schema::DatasetSchema;
use serde::{Deserialize, Serialize};

/// `DoGet` ticket: one dataset's unsealed rows.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BufferTicket {
    pub env: String,
    pub dataset: String,
}

/// `app_metadata` of the stream's schema message.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct BufferHeader {
    /// The answering node's id (its seals' name in the manifest).
    pub node: String,
    /// Rows of the dataset in the node's WAL up to here are in committed segments.
    pub sealed_seq: u64,
    /// The dataset's columns as the node knows them.
    pub schema: DatasetSchema,
}

/// The extra column of every batch: the highest WAL sequence of the row's
/// group (every row of a batch is of one group).
pub(crate) const GROUP_SEQ_COLUMN: &str = "__quarry_group_max_seq";
