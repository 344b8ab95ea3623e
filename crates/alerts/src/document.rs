//! Everything alerting keeps, as one versioned JSON document in the object
//! store (`alerts/state.json`), rewritten whole on every change.
//!
//! A put of the local object store writes a staging file and renames it, and an
//! S3 put is atomic, so after `kill -9` the document is either the old or the
//! new one, never a mix. Alert state and the outbox change in the same write,
//! which is what keeps a restart from re-sending or dropping a page.

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use crate::burn::BurnAlert;
use crate::error::{AlertError, Result};
use crate::markers::{Marker, MarkerSetting};
use crate::notify::Notification;
use crate::recipients::Recipient;
use crate::slo::Slo;
use crate::triggers::Trigger;

/// The document's key in the object store.
pub const DOCUMENT_PATH: &str = "alerts/state.json";
/// The format version written; a newer one is refused rather than misread.
pub const FORMAT_VERSION: u32 = 1;

/// All of alerting's state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Document {
    #[serde(default)]
    pub version: u32,
    /// Per environment.
    #[serde(default)]
    pub environments: BTreeMap<String, Environment>,
    /// Notifications not delivered yet, oldest first.
    #[serde(default)]
    pub outbox: Vec<Notification>,
}

/// One environment's definitions and state.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Environment {
    #[serde(default)]
    pub markers: Vec<Marker>,
    #[serde(default)]
    pub marker_settings: Vec<MarkerSetting>,
    #[serde(default)]
    pub recipients: Vec<Recipient>,
    #[serde(default)]
    pub triggers: Vec<Trigger>,
    #[serde(default)]
    pub slos: Vec<Slo>,
    #[serde(default)]
    pub burn_alerts: Vec<BurnAlert>,
}

/// Reads and writes the document.
#[derive(Debug, Clone)]
pub struct Persistence {
    store: Arc<dyn ObjectStore>,
    path: Path,
}

impl Persistence {
    /// The document in `store`.
    pub fn new(store: Arc<dyn ObjectStore>) -> Persistence {
        Persistence {
            store,
            path: Path::from(DOCUMENT_PATH),
        }
    }

    /// Loads the document (empty when none was written yet).
    pub async fn load(&self) -> Result<Document> {
        let bytes = match self.store.get(&self.path).await {
            Ok(result) => result
                .bytes()
                .await
                .map_err(|error| AlertError::Storage(error.to_string()))?,
            Err(object_store::Error::NotFound { .. }) => {
                return Ok(Document {
                    version: FORMAT_VERSION,
                    ..Document::default()
                });
            }
            Err(error) => return Err(AlertError::Storage(error.to_string())),
        };
        let document: Document = serde_json::from_slice(&bytes)
            .map_err(|error| AlertError::Storage(format!("{DOCUMENT_PATH}: {error}")))?;
        if document.version > FORMAT_VERSION {
            return Err(AlertError::Storage(format!(
                "{DOCUMENT_PATH} has format {} (this build reads up to {FORMAT_VERSION})",
                document.version
            )));
        }
        Ok(document)
    }

    /// Writes the document whole.
    pub async fn save(&self, document: &Document) -> Result<()> {
        let bytes =
            serde_json::to_vec(document).map_err(|error| AlertError::Storage(error.to_string()))?;
        self.store
            .put(&self.path, PutPayload::from(bytes))
            .await
            .map_err(|error| AlertError::Storage(error.to_string()))?;
        Ok(())
    }
}
