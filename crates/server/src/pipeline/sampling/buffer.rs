//! Spans waiting for their trace's decision, in bounded memory, and the
//! decisions remembered for late spans.
//!
//! A request's spans of one dataset are held as one Arrow batch (only the rows
//! to sample); each buffered trace lists its rows in those batches. A held batch
//! is freed when every row of it is decided.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use arrow::array::RecordBatch;

/// A trace of an environment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TraceKey {
    pub environment: String,
    pub trace_id: String,
}

/// A request's rows of one dataset that wait for decisions.
#[derive(Debug)]
struct Held {
    dataset: String,
    batch: RecordBatch,
    undecided: usize,
    bytes: u64,
}

/// A trace waiting for its decision.
#[derive(Debug)]
struct Waiting {
    first_seen: Instant,
    root_seen: Option<Instant>,
    /// (held batch, row) of each of its rows.
    rows: Vec<(u64, u32)>,
}

/// A decided trace's rows, by held batch.
#[derive(Debug)]
pub struct TakenPart {
    pub held: u64,
    pub dataset: String,
    pub batch: RecordBatch,
    pub rows: Vec<u32>,
}

/// Why a trace is decided now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Its root arrived `decision_wait` ago.
    Root,
    /// Its first span arrived `trace_timeout` ago, and no root came.
    Timeout,
    /// The buffer is over its bounds and this is among the oldest traces.
    Early,
}

/// How long an environment's traces wait.
#[derive(Debug, Clone, Copy)]
pub struct Waits {
    pub decision_wait: Duration,
    pub trace_timeout: Duration,
}

/// Bounds of the buffer.
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_spans: usize,
    pub max_bytes: u64,
}

/// Share of the bounds the buffer is brought back to when over them (so a full
/// buffer is not decided one trace per span).
const RELIEF: f64 = 0.9;

/// The buffered traces of every environment.
#[derive(Debug, Default)]
pub struct TraceBuffer {
    held: HashMap<u64, Held>,
    next_held: u64,
    traces: HashMap<TraceKey, Waiting>,
    spans: usize,
    bytes: u64,
}

impl TraceBuffer {
    /// Rows buffered.
    pub fn spans(&self) -> usize {
        self.spans
    }

    /// Bytes of the held batches.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Traces buffered.
    pub fn traces(&self) -> usize {
        self.traces.len()
    }

    /// Holds `batch` (rows of `dataset` of `environment`), row `i` belonging to
    /// trace `trace_ids[i]` and being a root span when `roots[i]`.
    pub fn hold(
        &mut self,
        environment: &str,
        dataset: &str,
        batch: RecordBatch,
        trace_ids: &[String],
        roots: &[bool],
        now: Instant,
    ) {
        if batch.num_rows() == 0 {
            return;
        }
        let id = self.next_held;
        self.next_held += 1;
        let bytes = batch.get_array_memory_size() as u64;
        for (row, trace_id) in trace_ids.iter().enumerate() {
            let key = TraceKey {
                environment: environment.to_owned(),
                trace_id: trace_id.clone(),
            };
            let waiting = self.traces.entry(key).or_insert_with(|| Waiting {
                first_seen: now,
                root_seen: None,
                rows: Vec::new(),
            });
            if roots.get(row).copied().unwrap_or(false) && waiting.root_seen.is_none() {
                waiting.root_seen = Some(now);
            }
            // Rows of a batch are at most the event limit, far below u32::MAX.
            waiting.rows.push((id, row as u32));
        }
        self.spans += trace_ids.len();
        self.bytes += bytes;
        self.held.insert(
            id,
            Held {
                dataset: dataset.to_owned(),
                batch,
                undecided: trace_ids.len(),
                bytes,
            },
        );
    }

    /// The traces to decide now: those whose wait is over, then, while the
    /// buffer is over its bounds, the oldest others.
    pub fn due(
        &self,
        now: Instant,
        waits_of: impl Fn(&str) -> Option<Waits>,
        bounds: Bounds,
    ) -> Vec<(TraceKey, Due)> {
        let mut due = Vec::new();
        let mut others = Vec::new();
        let mut spans_left = self.spans;
        for (key, waiting) in &self.traces {
            // An environment without sampling rules now: decide at once.
            let reason = match waits_of(&key.environment) {
                None => Some(Due::Timeout),
                Some(waits) => match waiting.root_seen {
                    Some(root) if now >= root + waits.decision_wait => Some(Due::Root),
                    _ if now >= waiting.first_seen + waits.trace_timeout => Some(Due::Timeout),
                    _ => None,
                },
            };
            match reason {
                Some(reason) => {
                    spans_left -= waiting.rows.len();
                    due.push((key.clone(), reason));
                }
                None => others.push((waiting.first_seen, key, waiting.rows.len())),
            }
        }
        let bytes_per_span = if self.spans == 0 {
            0.0
        } else {
            self.bytes as f64 / self.spans as f64
        };
        let over = |spans: usize| {
            spans > bounds.max_spans || spans as f64 * bytes_per_span > bounds.max_bytes as f64
        };
        if over(spans_left) {
            let target_spans = (bounds.max_spans as f64 * RELIEF) as usize;
            let target_bytes = bounds.max_bytes as f64 * RELIEF;
            others.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.cmp(b.1)));
            for (_, key, rows) in others {
                if spans_left <= target_spans && spans_left as f64 * bytes_per_span <= target_bytes
                {
                    break;
                }
                spans_left -= rows;
                due.push((key.clone(), Due::Early));
            }
        }
        due
    }

    /// Removes a trace and answers its rows, by held batch.
    pub fn take(&mut self, key: &TraceKey) -> Vec<TakenPart> {
        let Some(waiting) = self.traces.remove(key) else {
            return Vec::new();
        };
        let mut parts: Vec<TakenPart> = Vec::new();
        for (id, row) in waiting.rows {
            let Some(held) = self.held.get_mut(&id) else {
                continue;
            };
            match parts.iter_mut().find(|part| part.held == id) {
                Some(part) => part.rows.push(row),
                None => parts.push(TakenPart {
                    held: id,
                    dataset: held.dataset.clone(),
                    batch: held.batch.clone(),
                    rows: vec![row],
                }),
            }
            held.undecided -= 1;
            self.spans -= 1;
            if held.undecided == 0 {
                self.bytes -= held.bytes;
                self.held.remove(&id);
            }
        }
        parts
    }

    /// Every held batch with its still undecided rows and their traces (for
    /// rewriting the journal).
    pub fn undecided(&self) -> Vec<(String, String, RecordBatch, Vec<u32>)> {
        let mut rows_of: HashMap<u64, (String, Vec<u32>)> = HashMap::new();
        for (key, waiting) in &self.traces {
            for (id, row) in &waiting.rows {
                rows_of
                    .entry(*id)
                    .or_insert_with(|| (key.environment.clone(), Vec::new()))
                    .1
                    .push(*row);
            }
        }
        let mut ids: Vec<u64> = rows_of.keys().copied().collect();
        ids.sort_unstable();
        ids.into_iter()
            .filter_map(|id| {
                let (environment, mut rows) = rows_of.remove(&id)?;
                let held = self.held.get(&id)?;
                rows.sort_unstable();
                Some((environment, held.dataset.clone(), held.batch.clone(), rows))
            })
            .collect()
    }
}

/// A remembered decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Remembered {
    pub keep: bool,
    pub rate: u64,
}

/// Decisions of recent traces, so their late spans follow them: at most
/// `capacity`, each for at most `ttl`, oldest forgotten first.
#[derive(Debug)]
pub struct Decisions {
    capacity: usize,
    ttl: Duration,
    map: HashMap<TraceKey, (Remembered, Instant)>,
    order: VecDeque<(Instant, TraceKey)>,
}

impl Decisions {
    /// An empty memory.
    pub fn new(capacity: usize, ttl: Duration) -> Decisions {
        Decisions {
            capacity,
            ttl,
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Remembers a decision made `now`.
    pub fn remember(&mut self, key: TraceKey, decision: Remembered, now: Instant) {
        self.forget_old(now);
        self.map.insert(key.clone(), (decision, now));
        self.order.push_back((now, key));
        while self.map.len() > self.capacity {
            self.pop_oldest();
        }
    }

    /// The decision of a trace, unless forgotten.
    pub fn get(&self, key: &TraceKey, now: Instant) -> Option<Remembered> {
        let (decision, at) = self.map.get(key)?;
        (now < *at + self.ttl).then_some(*decision)
    }

    /// Every remembered decision (for rewriting the journal).
    pub fn all(&self) -> impl Iterator<Item = (&TraceKey, Remembered)> {
        self.map.iter().map(|(key, (decision, _))| (key, *decision))
    }

    /// Decisions remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }

    fn forget_old(&mut self, now: Instant) {
        while self
            .order
            .front()
            .is_some_and(|(at, _)| now >= *at + self.ttl)
        {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some((at, key)) = self.order.pop_front() {
            // Only if not remembered again since (then a newer entry follows).
            if self.map.get(&key).is_some_and(|(_, when)| *when == at) {
                self.map.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(rows: usize) -> RecordBatch {
        let schema = Schema::new(vec![Field::new("n", DataType::Int64, false)]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(Int64Array::from_iter_values(0..rows as i64))],
        )
        .unwrap()
    }

    fn key(trace_id: &str) -> TraceKey {
        TraceKey {
            environment: "prod".into(),
            trace_id: trace_id.into(),
        }
    }

    const WAITS: Waits = Waits {
        decision_wait: Duration::from_secs(2),
        trace_timeout: Duration::from_secs(30),
    };
    const ROOMY: Bounds = Bounds {
        max_spans: 1_000,
        max_bytes: u64::MAX,
    };

    #[test]
    fn a_trace_is_due_after_its_root_waited_or_at_its_timeout() {
        let start = Instant::now();
        let mut buffer = TraceBuffer::default();
        let ids = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        buffer.hold(
            "prod",
            "a",
            batch(3),
            &ids(&["t1", "t2", "t1"]),
            &[false, false, true],
            start,
        );
        let later = start + Duration::from_secs(1);
        buffer.hold("prod", "b", batch(1), &ids(&["t1"]), &[false], later);
        assert_eq!(buffer.spans(), 4);
        let waits = |_: &str| Some(WAITS);
        assert!(
            buffer
                .due(start + Duration::from_millis(1999), waits, ROOMY)
                .is_empty()
        );
        assert_eq!(
            buffer.due(start + Duration::from_secs(2), waits, ROOMY),
            [(key("t1"), Due::Root)]
        );
        let parts = buffer.take(&key("t1"));
        let rows: Vec<(&str, Vec<u32>)> = parts
            .iter()
            .map(|p| (p.dataset.as_str(), p.rows.clone()))
            .collect();
        assert_eq!(rows, [("a", vec![0, 2]), ("b", vec![0])]);
        assert_eq!((buffer.spans(), buffer.traces()), (1, 1));
        assert!(
            buffer
                .due(start + Duration::from_secs(29), waits, ROOMY)
                .is_empty()
        );
        assert_eq!(
            buffer.due(start + Duration::from_secs(30), waits, ROOMY),
            [(key("t2"), Due::Timeout)]
        );
        buffer.take(&key("t2"));
        assert_eq!(
            (buffer.spans(), buffer.bytes(), buffer.held.len()),
            (0, 0, 0)
        );
        // Without rules, buffered traces are due at once.
        buffer.hold("prod", "a", batch(1), &ids(&["t3"]), &[true], start);
        assert_eq!(
            buffer.due(start, |_| None, ROOMY),
            [(key("t3"), Due::Timeout)]
        );
    }

    #[test]
    fn over_its_bounds_the_oldest_traces_are_due_early() {
        let start = Instant::now();
        let mut buffer = TraceBuffer::default();
        for i in 0..20u64 {
            let ids = vec![format!("t{i:02}"); 10];
            buffer.hold(
                "prod",
                "a",
                batch(10),
                &ids,
                &[false; 10],
                start + Duration::from_millis(i),
            );
        }
        let bounds = Bounds {
            max_spans: 150,
            max_bytes: u64::MAX,
        };
        let due = buffer.due(start + Duration::from_millis(20), |_| Some(WAITS), bounds);
        // 200 spans, brought back to 135 or fewer: the 7 oldest traces.
        let expected: Vec<(TraceKey, Due)> = (0..7)
            .map(|i| (key(&format!("t{i:02}")), Due::Early))
            .collect();
        assert_eq!(due, expected);
    }

    #[test]
    fn decisions_are_bounded_and_expire() {
        let start = Instant::now();
        let mut decisions = Decisions::new(2, Duration::from_secs(60));
        let kept = Remembered {
            keep: true,
            rate: 5,
        };
        decisions.remember(key("a"), kept, start);
        decisions.remember(key("b"), kept, start);
        decisions.remember(key("c"), kept, start);
        assert_eq!(decisions.get(&key("a"), start), None);
        assert_eq!(decisions.get(&key("c"), start), Some(kept));
        assert_eq!(
            decisions.get(&key("c"), start + Duration::from_secs(60)),
            None
        );
        decisions.remember(key("d"), kept, start + Duration::from_secs(61));
        assert_eq!(decisions.len(), 1);
    }
}
