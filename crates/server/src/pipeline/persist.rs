//! The pipeline's rules in the object store: each change is a new, create-only
//! object `pipeline/rules-<seq>.json` (the manifest's pattern), so a restart reads
//! the newest, nodes sharing the store see the same rules, and two nodes changing
//! them at once cannot silently overwrite each other (the second gets a conflict).

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use parking_lot::Mutex;

use super::PipelineError;
use super::rules::PipelineRules;

/// Directory of the rule objects.
const RULES_DIR: &str = "pipeline";
/// Prefix of each rule object's name, before its sequence number.
const RULES_PREFIX: &str = "rules-";

/// The persisted rules and the sequence number of the newest version.
pub struct RulesStore {
    objects: Arc<dyn ObjectStore>,
    seq: Mutex<u64>,
}

fn rules_path(seq: u64) -> Path {
    Path::from(format!("{RULES_DIR}/{RULES_PREFIX}{seq:020}.json"))
}

fn storage_error(error: impl std::fmt::Display) -> PipelineError {
    PipelineError::Storage(error.to_string())
}

impl RulesStore {
    /// Rules kept in `objects`.
    pub fn new(objects: Arc<dyn ObjectStore>) -> RulesStore {
        RulesStore {
            objects,
            seq: Mutex::new(0),
        }
    }

    /// The newest rules (none persisted: empty).
    pub async fn load(&self) -> Result<PipelineRules, PipelineError> {
        let listed: Vec<_> = self
            .objects
            .list(Some(&Path::from(RULES_DIR)))
            .try_collect()
            .await
            .map_err(storage_error)?;
        let newest = listed
            .iter()
            .filter_map(|meta| {
                let name = meta.location.filename()?;
                name.strip_prefix(RULES_PREFIX)?
                    .strip_suffix(".json")?
                    .parse::<u64>()
                    .ok()
            })
            .max();
        let Some(seq) = newest else {
            return Ok(PipelineRules::default());
        };
        let bytes = self
            .objects
            .get(&rules_path(seq))
            .await
            .map_err(storage_error)?
            .bytes()
            .await
            .map_err(storage_error)?;
        let rules = serde_json::from_slice(&bytes)
            .map_err(|error| storage_error(format!("{}: {error}", rules_path(seq))))?;
        *self.seq.lock() = seq;
        Ok(rules)
    }

    /// Writes `rules` as the next version.
    pub async fn save(&self, rules: &PipelineRules) -> Result<(), PipelineError> {
        let seq = *self.seq.lock() + 1;
        let json = serde_json::to_vec_pretty(rules).map_err(storage_error)?;
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .objects
            .put_opts(&rules_path(seq), PutPayload::from(json), options)
            .await
        {
            Ok(_) => {
                *self.seq.lock() = seq;
                Ok(())
            }
            Err(object_store::Error::AlreadyExists { .. }) => Err(PipelineError::Conflict),
            Err(error) => Err(storage_error(error)),
        }
    }
}
