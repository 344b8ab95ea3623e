//! The Postgres wire protocol (`--pg`, `[server] pg`): psql, psycopg, JDBC,
//! Grafana, Metabase and DBeaver query the datasets of the environment whose
//! API key is the password (docs/postgres-and-flight-sql.md).
//!
//! Built on datafusion-postgres (pgwire, arrow-pg's type mapping and
//! datafusion-pg-catalog's `pg_catalog`), with Quarry's own parts: the start of
//! a connection ([`startup`]), each connection's session ([`session`]), the
//! guardrails of SQL over HTTP ([`guard`]) and SQLSTATEs ([`errors`]).

mod errors;
mod guard;
mod queries;
mod session;
mod startup;

use std::future::Future;
use std::sync::Arc;

use datafusion_postgres::pgwire::api::cancel::DefaultCancelHandler;
use datafusion_postgres::pgwire::api::{ConnectionManager, PgWireServerHandlers};
use datafusion_postgres::pgwire::tokio::process_socket;
use quarry_engine::QueryEngine;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::auth::Auth;
use errors::ErrorCodes;
use queries::Queries;
use startup::Startup;

/// Most Postgres connections open at once (Postgres's own default is 100);
/// beyond it a new connection is closed at once, so idle clients cannot pile
/// up sessions without bound.
const MAX_CONNECTIONS: usize = 256;

/// Every handler of the Postgres port; shared by all its connections.
struct Handlers {
    startup: Arc<Startup>,
    queries: Arc<Queries>,
    cancel: Arc<DefaultCancelHandler>,
    errors: Arc<ErrorCodes>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(
        &self,
    ) -> Arc<impl datafusion_postgres::pgwire::api::query::SimpleQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn extended_query_handler(
        &self,
    ) -> Arc<impl datafusion_postgres::pgwire::api::query::ExtendedQueryHandler> {
        Arc::clone(&self.queries)
    }

    fn startup_handler(&self) -> Arc<impl datafusion_postgres::pgwire::api::auth::StartupHandler> {
        Arc::clone(&self.startup)
    }

    fn error_handler(&self) -> Arc<impl datafusion_postgres::pgwire::api::ErrorHandler> {
        Arc::clone(&self.errors)
    }

    fn cancel_handler(&self) -> Arc<impl datafusion_postgres::pgwire::api::cancel::CancelHandler> {
        Arc::clone(&self.cancel)
    }
}

/// Serves the Postgres protocol on `listener` until `stop` resolves; each
/// connection runs in its own task, and those still open then are closed.
pub async fn serve(
    listener: TcpListener,
    auth: Arc<Auth>,
    engine: Arc<QueryEngine>,
    stop: impl Future<Output = ()> + Send,
) {
    let connections = Arc::new(ConnectionManager::new());
    let handlers = Arc::new(Handlers {
        startup: Arc::new(Startup::new(auth, engine, Arc::clone(&connections))),
        queries: Arc::new(Queries::new()),
        cancel: Arc::new(DefaultCancelHandler::new(connections)),
        errors: Arc::new(ErrorCodes),
    });
    let mut open = JoinSet::new();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => break,
            accepted = listener.accept() => match accepted {
                Ok((socket, peer)) if open.len() >= MAX_CONNECTIONS => {
                    warn!(%peer, limit = MAX_CONNECTIONS, "too many Postgres connections; closing a new one");
                    drop(socket);
                }
                Ok((socket, peer)) => {
                    let _ = socket.set_nodelay(true);
                    let handlers = Arc::clone(&handlers);
                    open.spawn(async move {
                        if let Err(error) = process_socket(socket, None, handlers).await {
                            debug!(%error, %peer, "Postgres connection ended with an error");
                        }
                    });
                }
                Err(error) => warn!(%error, "cannot accept a Postgres connection"),
            },
            // Reap finished connections so the set holds only open ones.
            Some(_) = open.join_next(), if !open.is_empty() => {}
        }
    }
    open.shutdown().await;
}
