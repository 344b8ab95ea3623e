//! One stream message, whatever its transport, into the store: its rows, or
//! its dead letter when it cannot be decoded. Either way the message is done
//! (and may be acknowledged) once [`MessageSink::write`] returns `Ok`.

use bytes::Bytes;

use crate::config::{StreamFormat, StreamSignal};
use crate::sources::dead_letter::{DeadLetter, raw_cap};
use crate::sources::deliver::{Delivered, Deliverer, Stopped};
use crate::sources::format;
use crate::sources::status::SourceReporter;

/// A message as its transport received it.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    /// The topic it was published to.
    pub topic: &'a str,
    /// Kafka: its partition.
    pub partition: Option<i32>,
    /// Kafka: its offset.
    pub offset: Option<i64>,
    /// Its dataset by the source's rule (`Ok(None)`: OTLP rows take their
    /// service's), or why it has none.
    pub dataset: Result<Option<String>, String>,
    /// Its bytes.
    pub body: Bytes,
}

/// What writing a message did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Its rows are durable.
    Rows(u64),
    /// Its dead letter is durable.
    DeadLetter,
}

/// Writes one source's messages.
#[derive(Clone)]
pub struct MessageSink {
    /// The source's settings that shape its requests.
    pub format: StreamFormat,
    /// The OTLP signal of the `otlp_*` formats.
    pub signal: StreamSignal,
    /// The environment rows go to.
    pub environment: String,
    /// Where undecodable messages go.
    pub dead_letter_dataset: String,
    /// `mqtt` or `kafka`.
    pub transport: &'static str,
    /// Writes through the ingest service.
    pub deliverer: Deliverer,
    /// The source's status.
    pub reporter: SourceReporter,
    /// Largest message body accepted (the ingest service's body limit).
    pub max_body_bytes: usize,
    /// Largest single event accepted (bounds a dead-letter row).
    pub max_event_bytes: usize,
}

impl MessageSink {
    /// Writes `message`'s rows, or its dead letter; `Ok` once durable.
    pub async fn write(&mut self, message: Message<'_>) -> Result<Written, Stopped> {
        let (kind, error) = match self.rows(&message).await? {
            Ok(rows) => return Ok(Written::Rows(rows)),
            Err(refusal) => refusal,
        };
        self.reporter.error(kind, &error);
        tracing::warn!(
            source = self.reporter.name(),
            topic = message.topic,
            partition = message.partition,
            offset = message.offset,
            bytes = message.body.len(),
            %error,
            "a message cannot be stored; writing it to the dead-letter dataset {}",
            self.dead_letter_dataset
        );
        let letter = DeadLetter {
            source: self.reporter.name(),
            transport: self.transport,
            topic: message.topic,
            partition: message.partition,
            offset: message.offset,
            error,
            raw: &message.body,
            raw_cap: raw_cap(self.max_body_bytes, self.max_event_bytes),
        };
        let request = letter.request(&self.environment, &self.dead_letter_dataset);
        match self.deliverer.deliver(request).await? {
            Delivered::Stored(_) => {}
            // Our own row refused (a column budget, say): nothing more to keep.
            Delivered::Refused(reason) => {
                tracing::error!(source = self.reporter.name(), %reason, "the dead-letter row itself was refused; the message is dropped");
            }
        }
        self.reporter.dead_letter();
        Ok(Written::DeadLetter)
    }

    /// The message's rows: `Ok(Ok(rows))` when durable, `Ok(Err((kind, why)))`
    /// when the message cannot be stored.
    async fn rows(
        &mut self,
        message: &Message<'_>,
    ) -> Result<Result<u64, (&'static str, String)>, Stopped> {
        if message.body.len() > self.max_body_bytes {
            return Ok(Err((
                "oversize",
                format!(
                    "the message has {} bytes, more than the {} of limits.max_body_bytes",
                    message.body.len(),
                    self.max_body_bytes
                ),
            )));
        }
        let dataset = match &message.dataset {
            Ok(dataset) => dataset.clone(),
            Err(why) => return Ok(Err(("decode", why.clone()))),
        };
        let request = match format::request(
            self.format,
            self.signal,
            &self.environment,
            dataset,
            message.body.clone(),
        ) {
            Ok(request) => request,
            Err(error) => return Ok(Err(("decode", error.to_string()))),
        };
        match self.deliverer.deliver(request).await? {
            Delivered::Stored(outcome) => {
                self.reporter.stored(outcome.rows);
                if outcome.rejected > 0 {
                    // The good items are stored; the message is kept whole
                    // beside them so the refused ones are not lost.
                    let why = outcome.first_error.unwrap_or_default();
                    return Ok(Err((
                        "decode",
                        format!(
                            "{} item(s) of the message were refused ({} rows stored): {why}",
                            outcome.rejected, outcome.rows
                        ),
                    )));
                }
                Ok(Ok(outcome.rows))
            }
            Delivered::Refused(reason) => Ok(Err(("decode", reason))),
        }
    }
}
