//! A panic while planning or running one query fails that query with an error,
//! never the connection or the process.
//!
//! DataFusion and arrow assert their invariants with panics, and a panic in a task
//! DataFusion spawned comes back as a "Join Error" or is re-raised where its stream
//! is polled. Every query surface therefore plans inside [`catch_panics`] and hands
//! out its batches through [`PanicSafeStream`], which turn a panic into an error of
//! that query: an internal error (500), or resources exhausted when the panic is a
//! size overflow.
//!
//! Size overflows: arrow addresses a string column with 32-bit offsets, and some of
//! its kernels unwrap the conversion of an output length over 2 GiB (a recursive
//! CTE doubling a string with `||` reaches it at the 31st step). That is the query
//! asking for too much, not a defect of the server. The payload of such a panic is a
//! bare "called `Option::unwrap()` on a `None` value"; only its location tells, and
//! only a panic hook sees the location. So each query runs in a [`QueryScope`], a
//! tokio task-local that [`install_panic_hook`] carries into every task DataFusion
//! spawns for the query (through DataFusion's `JoinSetTracer`); the hook marks the
//! scope of a query whose task overflowed, and the query's guard reads the mark
//! however the panic travelled back (re-raised, or as a join error).

use std::any::Any;
use std::future::Future;
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::Once;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use datafusion::common::runtime::{JoinSetTracer, set_join_set_tracer};
use datafusion::error::DataFusionError;
use datafusion::physical_plan::{RecordBatchStream, SendableRecordBatchStream};
use futures::future::BoxFuture;
use futures::{FutureExt, Stream, StreamExt};

use crate::QueryError;

/// Panic messages that say a buffer outgrew what it can address (arrow's offset
/// builders, `Vec` growth past `isize::MAX` bytes).
const SIZE_OVERFLOW_MESSAGES: [&str; 2] = ["offset overflow", "capacity overflow"];
/// Where arrow unwraps an output length converted to a 32-bit offset without a
/// message of its own: `||` on strings (arrow-string's `concat_elements`).
const UNCHECKED_OFFSET_SITES: [&str; 1] = ["concat_elements.rs"];
/// The message of `Option::unwrap` on `None`.
const UNWRAP_NONE: &str = "called `Option::unwrap()` on a `None` value";
/// What a query that overflowed is told.
const RESOURCE_MESSAGE: &str = "a value of the query outgrew what one column can hold \
     (2 GiB of strings per batch); narrow the query";

tokio::task_local! {
    /// The query the current task works for.
    static QUERY: Arc<QueryScope>;
}

/// What the panic hook found out about one query's panics.
#[derive(Debug, Default)]
pub struct QueryScope {
    /// A task of the query panicked because a buffer outgrew its size limit.
    size_overflow: AtomicBool,
}

impl QueryScope {
    /// A scope for a new query.
    pub fn new() -> Arc<QueryScope> {
        Arc::new(QueryScope::default())
    }

    fn overflowed(&self) -> bool {
        self.size_overflow.load(Ordering::Relaxed)
    }
}

/// Carries the current task's [`QueryScope`] into the tasks DataFusion spawns.
struct ScopeTracer;

impl JoinSetTracer for ScopeTracer {
    fn trace_future(
        &self,
        future: BoxFuture<'static, Box<dyn Any + Send>>,
    ) -> BoxFuture<'static, Box<dyn Any + Send>> {
        // Called where the task is spawned, so the scope is the spawner's.
        match QUERY.try_with(Arc::clone) {
            Ok(scope) => QUERY.scope(scope, future).boxed(),
            Err(_) => future,
        }
    }

    fn trace_block(
        &self,
        block: Box<dyn FnOnce() -> Box<dyn Any + Send> + Send>,
    ) -> Box<dyn FnOnce() -> Box<dyn Any + Send> + Send> {
        match QUERY.try_with(Arc::clone) {
            Ok(scope) => Box::new(move || QUERY.sync_scope(scope, block)),
            Err(_) => block,
        }
    }
}

/// The tracer DataFusion is given (it keeps a `'static` reference).
static SCOPE_TRACER: ScopeTracer = ScopeTracer;

/// Installs, once per process, the panic hook that tells size overflows of a
/// query from other panics, and the tracer that carries query scopes into
/// DataFusion's tasks. A size overflow in a query is logged as a warning instead
/// of a crash report; every other panic goes to the hook installed before.
pub fn install_panic_hook() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        if set_join_set_tracer(&SCOPE_TRACER).is_err() {
            tracing::warn!("a DataFusion task tracer was set already; panics in spawned query tasks are reported as internal errors");
        }
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let marked = is_size_overflow(info)
                && QUERY
                    .try_with(|scope| scope.size_overflow.store(true, Ordering::Relaxed))
                    .is_ok();
            if !marked {
                previous(info);
                return;
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
    });
}

/// Runs `future` (planning, or collecting a result) in a new [`QueryScope`] and
/// turns a panic in it, or in a task it spawned, into an error of this query.
pub async fn catch_panics<T>(
    future: impl Future<Output = Result<T, QueryError>>,
) -> Result<T, QueryError> {
    catch_panics_in(&QueryScope::new(), future).await
}

/// [`catch_panics`] in the given scope (shared with the query's result stream).
///
/// `AssertUnwindSafe`: the state a query's future touches is its own (session,
/// plan, streams) and is dropped with it; shared state (the memory pool, caches)
/// sits behind locks that stay consistent when a holder unwinds.
pub async fn catch_panics_in<T>(
    scope: &Arc<QueryScope>,
    future: impl Future<Output = Result<T, QueryError>>,
) -> Result<T, QueryError> {
    let outcome = QUERY
        .scope(Arc::clone(scope), AssertUnwindSafe(future).catch_unwind())
        .await;
    match outcome {
        Ok(Ok(value)) => Ok(value),
        // A spawned task's panic comes back as an execution ("Join Error") error.
        Ok(Err(QueryError::Execution(_))) if scope.overflowed() => Err(resources_exhausted()),
        Ok(Err(error)) => Err(error),
        Err(panic) => Err(QueryError::from(panic_error(scope, panic.as_ref()))),
    }
}

fn resources_exhausted() -> QueryError {
    QueryError::ResourcesExhausted(RESOURCE_MESSAGE.to_owned())
}

/// The error of a query (in `scope`) that panicked with `panic`.
fn panic_error(scope: &QueryScope, panic: &(dyn Any + Send)) -> DataFusionError {
    if scope.overflowed() {
        return DataFusionError::ResourcesExhausted(RESOURCE_MESSAGE.to_owned());
    }
    let message = payload_message(panic);
    tracing::error!(panic = %message, "a query panicked; it fails, the server goes on");
    // Internal: a panic is Quarry's fault, never the request's (a 500).
    DataFusionError::Internal(format!("the query panicked: {message}"))
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

/// A record batch stream polled in its query's [`QueryScope`], which ends with an
/// error instead of unwinding when polling its inner stream panics.
pub struct PanicSafeStream {
    inner: SendableRecordBatchStream,
    scope: Arc<QueryScope>,
    /// Set after a panic: the inner stream is not polled again.
    failed: bool,
}

impl PanicSafeStream {
    /// Wraps `inner`, the result of the query in `scope`.
    pub fn boxed(
        inner: SendableRecordBatchStream,
        scope: Arc<QueryScope>,
    ) -> SendableRecordBatchStream {
        Box::pin(PanicSafeStream {
            inner,
            scope,
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
        let this = &mut *self;
        let scope = Arc::clone(&this.scope);
        // Unwind safety as in `catch_panics_in`: a stream that panicked is never
        // polled again, only dropped.
        let polled = QUERY.sync_scope(Arc::clone(&scope), || {
            std::panic::catch_unwind(AssertUnwindSafe(|| this.inner.poll_next_unpin(cx)))
        });
        match polled {
            Ok(Poll::Ready(Some(Err(_)))) if scope.overflowed() => {
                this.failed = true;
                Poll::Ready(Some(Err(DataFusionError::ResourcesExhausted(
                    RESOURCE_MESSAGE.to_owned(),
                ))))
            }
            Ok(poll) => poll,
            Err(panic) => {
                this.failed = true;
                Poll::Ready(Some(Err(panic_error(&scope, panic.as_ref()))))
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
    use datafusion::common::runtime::SpawnedTask;
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
    use futures::stream;

    use super::*;

    /// Joins a task DataFusion's way, its failure as the error DataFusion makes.
    async fn spawned(panic_message: &'static str) -> Result<(), QueryError> {
        SpawnedTask::spawn(async move { panic!("{panic_message}") })
            .join()
            .await
            .map_err(|join| QueryError::from(DataFusionError::ExecutionJoin(Box::new(join))))
    }

    #[tokio::test]
    async fn a_panicking_future_is_an_execution_error() {
        let outcome: Result<(), QueryError> = catch_panics(async { panic!("kaboom") }).await;
        assert!(
            matches!(&outcome, Err(QueryError::Execution(message)) if message.contains("kaboom")),
            "{outcome:?}"
        );
    }

    #[tokio::test]
    async fn a_size_overflow_in_a_spawned_task_is_resources_exhausted() {
        install_panic_hook();
        let outcome = catch_panics(spawned("byte array offset overflow")).await;
        assert!(
            matches!(&outcome, Err(QueryError::ResourcesExhausted(_))),
            "{outcome:?}"
        );
        // Any other panic of a spawned task stays an internal error.
        let outcome = catch_panics(spawned("kaboom")).await;
        assert!(
            matches!(&outcome, Err(QueryError::Execution(_))),
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
        let items: Vec<_> = PanicSafeStream::boxed(inner, QueryScope::new())
            .collect()
            .await;
        assert_eq!(items.len(), 1);
        assert!(
            matches!(&items[0], Err(DataFusionError::Internal(message)) if message.contains("kaboom")),
            "{items:?}"
        );
    }
}
