//! A panic while planning or running one query fails that query with an error,
//! never the connection or the process.
//!
//! DataFusion and arrow assert their invariants with panics, and a panic in a task
//! DataFusion spawned comes back as a "Join Error" or is re-raised where its stream
//! is polled. Every query surface therefore plans inside [`catch_panics`] and hands
//! out its batches through [`PanicSafeStream`], which turn a panic into an error of
//! that query: an internal error (500), or resources exhausted when the panic is a
//! known size overflow.
//!
//! Size overflows: arrow addresses a string column with 32-bit offsets, and some of
//! its kernels unwrap the conversion of an output length over 2 GiB (a recursive
//! CTE doubling a string with `||` reaches it at the 31st step). That is the query
//! asking for too much, not a defect of the server. The payload of such a panic is a
//! bare "called `Option::unwrap()` on a `None` value"; only its location tells, and
//! only a panic hook sees the location. So [`install_panic_hook`] remembers which
//! tokio task had a size-overflow panic, and the error conversion looks the task up
//! (a spawned task's id is in its `JoinError`; a panic caught here happened in the
//! current task).

use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::{RecordBatchStream, SendableRecordBatchStream};
use futures::{FutureExt, Stream, StreamExt};
use tokio::task::{Id as TaskId, JoinError};

use crate::QueryError;

/// Panic messages that say a buffer outgrew what it can address (arrow's offset
/// builders, `Vec` growth past `isize::MAX` bytes).
const SIZE_OVERFLOW_MESSAGES: [&str; 2] = ["offset overflow", "capacity overflow"];
/// Where arrow unwraps an output length converted to a 32-bit offset without a
/// message of its own: `||` on strings (arrow-string's `concat_elements`).
const UNCHECKED_OFFSET_SITES: [&str; 1] = ["concat_elements.rs"];
/// The message of `Option::unwrap` on `None`.
const UNWRAP_NONE: &str = "called `Option::unwrap()` on a `None` value";
/// Tasks remembered by the panic hook; older ones are forgotten first. A task's
/// panic is looked up right after it, so a few dozen cover any burst.
const REMEMBERED_TASKS: usize = 64;

/// What a query that panicked is told.
const RESOURCE_MESSAGE: &str = "a value of the query outgrew what one column can hold \
     (2 GiB of strings per batch); narrow the query";

/// Tokio tasks in which a size-overflow panic happened, newest last.
static SIZE_OVERFLOW_TASKS: Mutex<VecDeque<TaskId>> = Mutex::new(VecDeque::new());

/// Installs a panic hook (once per process, at startup) that tells size overflows
/// from other panics: it remembers the task of a size overflow and logs it as a
/// warning instead of a crash report. Every other panic goes to the hook that was
/// installed before.
pub fn install_panic_hook() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !is_size_overflow(info) {
            previous(info);
            return;
        }
        if let Some(task) = tokio::task::try_id() {
            let mut tasks = SIZE_OVERFLOW_TASKS
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if tasks.len() >= REMEMBERED_TASKS {
                tasks.pop_front();
            }
            tasks.push_back(task);
        }
        let location = info
            .location()
            .map(|location| location.to_string())
            .unwrap_or_default();
        tracing::warn!(
            %location,
            message = %payload_message(info.payload()),
            "a query outgrew arrow's size limits; it fails as resources exhausted"
        );
    }));
}

/// Runs `future` (planning, or collecting a result) and turns a panic in it into
/// an error of this query.
///
/// `AssertUnwindSafe`: the state a query's future touches is its own (session,
/// plan, streams) and is dropped with it; shared state (the memory pool, caches)
/// sits behind locks that stay consistent when a holder unwinds.
pub async fn catch_panics<T>(
    future: impl Future<Output = Result<T, QueryError>>,
) -> Result<T, QueryError> {
    match AssertUnwindSafe(future).catch_unwind().await {
        Ok(result) => result,
        Err(panic) => Err(QueryError::from(panic_error(panic.as_ref()))),
    }
}

/// The error of a query that panicked with `panic` in the current task.
pub fn panic_error(panic: &(dyn Any + Send)) -> DataFusionError {
    let message = payload_message(panic);
    let overflow = tokio::task::try_id().is_some_and(take_size_overflow)
        || SIZE_OVERFLOW_MESSAGES
            .iter()
            .any(|needle| message.contains(needle));
    if overflow {
        DataFusionError::ResourcesExhausted(RESOURCE_MESSAGE.to_owned())
    } else {
        tracing::error!(panic = %message, "a query panicked; it fails, the server goes on");
        DataFusionError::Execution(format!("the query panicked: {message}"))
    }
}

/// When `error` is a task of the query that panicked with a size overflow (as the
/// panic hook recorded), the error the query should fail with instead.
pub fn size_overflow_error(error: &DataFusionError) -> Option<QueryError> {
    let task = panicked_task(error)?;
    take_size_overflow(task).then(|| QueryError::ResourcesExhausted(RESOURCE_MESSAGE.to_owned()))
}

/// The id of the spawned task whose panic `error` reports, if it does.
fn panicked_task(error: &DataFusionError) -> Option<TaskId> {
    let join = match error.find_root() {
        DataFusionError::ExecutionJoin(join) => Some(join.as_ref()),
        DataFusionError::External(external) => external
            .downcast_ref::<Arc<JoinError>>()
            .map(|join| join.as_ref())
            .or_else(|| external.downcast_ref::<JoinError>()),
        _ => None,
    }?;
    join.is_panic().then(|| join.id())
}

/// Whether `task` had a size-overflow panic; forgets it.
fn take_size_overflow(task: TaskId) -> bool {
    let mut tasks = SIZE_OVERFLOW_TASKS
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    match tasks.iter().position(|known| *known == task) {
        Some(index) => {
            tasks.remove(index);
            true
        }
        None => false,
    }
}

/// Whether the panic `info` describes is a buffer outgrowing its addressable size.
fn is_size_overflow(info: &PanicHookInfo<'_>) -> bool {
    let message = payload_message(info.payload());
    if SIZE_OVERFLOW_MESSAGES
        .iter()
        .any(|needle| message.contains(needle))
    {
        return true;
    }
    let file = info
        .location()
        .map(|location| location.file())
        .unwrap_or("");
    message == UNWRAP_NONE
        && file.contains("arrow-")
        && UNCHECKED_OFFSET_SITES
            .iter()
            .any(|site| file.ends_with(site))
}

/// The text of a panic payload (`panic!` with a literal or a formatted message).
fn payload_message(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "unknown panic".to_owned()
    }
}

/// A record batch stream that ends with an error instead of unwinding when
/// polling its inner stream panics.
pub struct PanicSafeStream {
    inner: SendableRecordBatchStream,
    /// Set after a panic: the inner stream is not polled again.
    failed: bool,
}

impl PanicSafeStream {
    /// Wraps `inner` into a [`SendableRecordBatchStream`].
    pub fn boxed(inner: SendableRecordBatchStream) -> SendableRecordBatchStream {
        Box::pin(PanicSafeStream {
            inner,
            failed: false,
        })
    }
}

impl Stream for PanicSafeStream {
    type Item = Result<RecordBatch, DataFusionError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.failed {
            return Poll::Ready(None);
        }
        // Unwind safety as in `catch_panics`: a stream that panicked is never
        // polled again, only dropped.
        let polled = std::panic::catch_unwind(AssertUnwindSafe(|| self.inner.poll_next_unpin(cx)));
        match polled {
            Ok(poll) => poll,
            Err(panic) => {
                self.failed = true;
                Poll::Ready(Some(Err(panic_error(panic.as_ref()))))
            }
        }
    }
}

impl RecordBatchStream for PanicSafeStream {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

#[cfg(test)]
mod tests {
    use arrow::datatypes::Schema;
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use futures::stream;

    use super::*;

    #[tokio::test]
    async fn a_panicking_future_is_an_execution_error() {
        let outcome: Result<(), QueryError> = catch_panics(async { panic!("kaboom") }).await;
        assert!(
            matches!(&outcome, Err(QueryError::Execution(message)) if message.contains("kaboom")),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn a_size_overflow_is_resources_exhausted() {
        let outcome: Result<(), QueryError> =
            catch_panics(async { panic!("byte array offset overflow") }).await;
        assert!(
            matches!(&outcome, Err(QueryError::ResourcesExhausted(_))),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn a_panicking_stream_ends_with_one_error() {
        let schema = Arc::new(Schema::empty());
        let panicking =
            stream::poll_fn(|_| -> Poll<Option<Result<RecordBatch, DataFusionError>>> {
                panic!("kaboom")
            });
        let inner = Box::pin(RecordBatchStreamAdapter::new(schema, panicking));
        let items: Vec<_> = PanicSafeStream::boxed(inner).collect().await;
        assert_eq!(items.len(), 1);
        assert!(
            matches!(&items[0], Err(DataFusionError::Execution(message)) if message.contains("kaboom")),
            "{items:?}"
        );
    }

    #[tokio::test]
    async fn a_spawned_task_recorded_as_overflowing_is_resources_exhausted() {
        let task = tokio::spawn(async { panic!("kaboom") });
        let join = task.await.err().unwrap();
        SIZE_OVERFLOW_TASKS.lock().unwrap().push_back(join.id());
        let error = DataFusionError::Context(
            "Join Error".into(),
            Box::new(DataFusionError::External(Box::new(Arc::new(join)))),
        );
        assert!(matches!(
            QueryError::from(error),
            QueryError::ResourcesExhausted(_)
        ));
    }
}
