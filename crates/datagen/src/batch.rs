//! Honeycomb batch bodies (`POST /1/batch/{dataset}`) from an event stream.
//!
//! One open batch per dataset; a batch is handed out as soon as it holds
//! `batch_size` events, and the rest at the end of the stream. Memory is bounded by
//! datasets x `batch_size` events.

use std::collections::VecDeque;

use crate::event::Event;
use crate::topology::SERVICES;

/// One request body for one dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchBody {
    /// The dataset to post to.
    pub dataset: &'static str,
    /// A JSON array of `{"time": ..., "data": {...}}` items.
    pub body: Vec<u8>,
    /// Events in the body.
    pub events: usize,
    /// Bytes of the events' `data` objects alone (the "raw JSON" of the events).
    pub data_bytes: usize,
}

struct OpenBatch {
    dataset: &'static str,
    body: Vec<u8>,
    events: usize,
    data_bytes: usize,
}

impl OpenBatch {
    fn new(dataset: &'static str) -> Self {
        OpenBatch {
            dataset,
            body: Vec::new(),
            events: 0,
            data_bytes: 0,
        }
    }

    fn push(&mut self, event: &Event) {
        self.body.push(if self.events == 0 { b'[' } else { b',' });
        let before = self.body.len();
        event.write_batch_item(&mut self.body);
        // `{"time":"<27 chars>","data":` and the closing brace are not event data.
        let envelope = b"{\"time\":\"\",\"data\":}".len() + 27;
        self.data_bytes += (self.body.len() - before).saturating_sub(envelope);
        self.events += 1;
    }

    fn take(&mut self) -> Option<BatchBody> {
        if self.events == 0 {
            return None;
        }
        self.body.push(b']');
        let body = BatchBody {
            dataset: self.dataset,
            body: std::mem::take(&mut self.body),
            events: self.events,
            data_bytes: self.data_bytes,
        };
        self.events = 0;
        self.data_bytes = 0;
        Some(body)
    }
}

/// Turns a stream of events into batch bodies of at most `batch_size` events each.
pub struct BatchBodies<I> {
    events: I,
    batch_size: usize,
    open: Vec<OpenBatch>,
    ready: VecDeque<BatchBody>,
    done: bool,
}

impl<I: Iterator<Item = Event>> BatchBodies<I> {
    /// Batches `events`, `batch_size` (at least 1) per body.
    pub fn new(events: I, batch_size: usize) -> Self {
        BatchBodies {
            events,
            batch_size: batch_size.max(1),
            open: Vec::new(),
            ready: VecDeque::new(),
            done: false,
        }
    }

    /// The event stream behind the bodies (e.g. to ask the generator what it did).
    pub fn into_inner(self) -> I {
        self.events
    }

    fn open_batch(&mut self, dataset: &'static str) -> &mut OpenBatch {
        let index = match self.open.iter().position(|b| b.dataset == dataset) {
            Some(index) => index,
            None => {
                self.open.push(OpenBatch::new(dataset));
                self.open.len() - 1
            }
        };
        &mut self.open[index]
    }
}

impl<I: Iterator<Item = Event>> Iterator for BatchBodies<I> {
    type Item = BatchBody;

    fn next(&mut self) -> Option<BatchBody> {
        loop {
            if let Some(body) = self.ready.pop_front() {
                return Some(body);
            }
            if self.done {
                return None;
            }
            match self.events.next() {
                Some(event) => {
                    let batch_size = self.batch_size;
                    let open = self.open_batch(event.dataset);
                    open.push(&event);
                    if open.events >= batch_size {
                        return open.take();
                    }
                }
                None => {
                    self.done = true;
                    let rest: Vec<BatchBody> =
                        self.open.iter_mut().filter_map(OpenBatch::take).collect();
                    self.ready.extend(rest);
                }
            }
        }
    }
}

/// Most open batches at once: one per dataset.
pub const MAX_OPEN_BATCHES: usize = SERVICES.len();

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Generator, GeneratorConfig};

    #[test]
    fn bodies_hold_every_event_once_as_valid_json() {
        let config = GeneratorConfig::new(11, 5_000, 1_700_000_000_000_000_000);
        let mut total = 0;
        let mut data_bytes = 0;
        let mut expected_data_bytes = 0;
        for event in Generator::new(config.clone()).unwrap() {
            let mut out = Vec::new();
            event.write_data_json(&mut out);
            expected_data_bytes += out.len();
        }
        for body in BatchBodies::new(Generator::new(config).unwrap(), 300) {
            assert!(body.events <= 300);
            let items: Vec<serde_json::Value> = serde_json::from_slice(&body.body).unwrap();
            assert_eq!(items.len(), body.events);
            for item in &items {
                assert_eq!(item["data"]["service.name"], body.dataset);
                assert!(item["time"].as_str().unwrap().ends_with('Z'));
            }
            total += body.events;
            data_bytes += body.data_bytes;
        }
        assert_eq!(total, 5_000);
        assert_eq!(data_bytes, expected_data_bytes);
    }
}
