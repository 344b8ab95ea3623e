//! Reading the sampling journal back: which journalled rows are still
//! undecided, which belong to kept traces not yet written to the store
//! ([`replay`]); and what a rewritten journal must hold ([`live_records`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use arrow::array::{Array, RecordBatch};
use arrow::error::ArrowError;

use super::buffer::{Decisions, Remembered, TraceBuffer, TraceKey};
use super::journal::Record;
use super::rates::select;
use super::spans::{trace_id_of, trace_ids};

/// What the journal says must be kept: `pending` (rows of kept traces not yet
/// applied), every remembered decision (applied, except the pending traces'),
/// then the undecided rows.
pub fn live_records(
    decisions: &Decisions,
    buffer: &TraceBuffer,
    pending: &[Record],
) -> Result<Vec<Record>, ArrowError> {
    let mut records: Vec<Record> = Vec::new();
    let pending_traces: HashSet<(String, String)> = pending
        .iter()
        .filter_map(|record| match record {
            Record::Spans {
                environment, batch, ..
            } => Some((environment, batch)),
            _ => None,
        })
        .flat_map(|(environment, batch)| {
            trace_ids(batch)
                .map(|ids| {
                    (0..ids.len())
                        .filter_map(|row| trace_id_of(ids, row))
                        .map(|id| (environment.clone(), id.to_owned()))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        })
        .collect();
    records.extend(pending.iter().cloned());
    let mut decided: BTreeMap<String, Vec<(String, Remembered)>> = BTreeMap::new();
    let mut applied: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, decision) in decisions.all() {
        decided
            .entry(key.environment.clone())
            .or_default()
            .push((key.trace_id.clone(), decision));
        if !pending_traces.contains(&(key.environment.clone(), key.trace_id.clone())) {
            applied
                .entry(key.environment.clone())
                .or_default()
                .push(key.trace_id.clone());
        }
    }
    for (environment, decisions) in decided {
        records.push(Record::Decided {
            environment,
            decisions,
        });
    }
    for (environment, trace_ids) in applied {
        records.push(Record::Applied {
            environment,
            trace_ids,
        });
    }
    for (environment, dataset, batch, rows) in buffer.undecided() {
        records.push(Record::Spans {
            environment,
            dataset,
            batch: select(&batch, &rows)?,
        });
    }
    Ok(records)
}

/// What became of a journalled row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFate {
    /// Its trace is not decided.
    Undecided,
    /// Its trace was decided kept at this rate; its rows may not be in the store.
    Pending(u64),
}

/// The journal's records folded: the spans records, each journalled row's fate
/// (rows of dropped and applied traces have none), the decisions, and the kept
/// traces not yet applied.
pub struct Replayed {
    pub spans: Vec<(String, String, RecordBatch)>,
    pub rows: HashMap<(usize, u32), RowFate>,
    pub decisions: Vec<(TraceKey, Remembered)>,
    pub pending: BTreeSet<TraceKey>,
}

pub fn replay(records: Vec<Record>) -> Replayed {
    let mut replayed = Replayed {
        spans: Vec::new(),
        rows: HashMap::new(),
        decisions: Vec::new(),
        pending: Default::default(),
    };
    // Journalled rows of each trace not yet decided, and of each pending trace.
    let mut open: HashMap<TraceKey, Vec<(usize, u32)>> = HashMap::new();
    let mut pending_rows: HashMap<TraceKey, Vec<(usize, u32)>> = HashMap::new();
    for record in records {
        match record {
            Record::Spans {
                environment,
                dataset,
                batch,
            } => {
                let index = replayed.spans.len();
                if let Some(ids) = trace_ids(&batch) {
                    for row in 0..batch.num_rows() {
                        if let Some(trace_id) = trace_id_of(ids, row) {
                            let key = TraceKey {
                                environment: environment.clone(),
                                trace_id: trace_id.to_owned(),
                            };
                            replayed
                                .rows
                                .insert((index, row as u32), RowFate::Undecided);
                            open.entry(key).or_default().push((index, row as u32));
                        }
                    }
                }
                replayed.spans.push((environment, dataset, batch));
            }
            Record::Decided {
                environment,
                decisions,
            } => {
                for (trace_id, decision) in decisions {
                    let key = TraceKey {
                        environment: environment.clone(),
                        trace_id,
                    };
                    let rows = open.remove(&key).unwrap_or_default();
                    for row in &rows {
                        if decision.keep {
                            replayed.rows.insert(*row, RowFate::Pending(decision.rate));
                        } else {
                            replayed.rows.remove(row);
                        }
                    }
                    if decision.keep && !rows.is_empty() {
                        pending_rows.entry(key.clone()).or_default().extend(rows);
                        replayed.pending.insert(key.clone());
                    }
                    replayed.decisions.push((key, decision));
                }
            }
            Record::Applied {
                environment,
                trace_ids,
            } => {
                for trace_id in trace_ids {
                    let key = TraceKey {
                        environment: environment.clone(),
                        trace_id,
                    };
                    for row in pending_rows.remove(&key).unwrap_or_default() {
                        replayed.rows.remove(&row);
                    }
                    replayed.pending.remove(&key);
                }
            }
        }
    }
    replayed
}
