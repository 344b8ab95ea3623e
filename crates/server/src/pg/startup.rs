//! The start of a Postgres connection: the API key is the password.
//!
//! With API keys configured, the server asks for a cleartext password and the
//! key's environment is the connection's; any user name is accepted (the key
//! alone says who is asking). With no keys configured there is one
//! environment, `default`, and no password is asked for, as the HTTP API
//! ignores `X-Honeycomb-Team` then.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion_postgres::pgwire::api::auth::{
    DefaultServerParameterProvider, StartupHandler, finish_authentication, protocol_negotiation,
    save_startup_parameters_to_metadata,
};
use datafusion_postgres::pgwire::api::{
    ClientInfo, ConnectionGuard, ConnectionHandle, ConnectionManager, METADATA_USER,
    PgWireConnectionState, PidSecretKeyGenerator, RandomPidSecretKeyGenerator,
};
use datafusion_postgres::pgwire::error::{PgWireError, PgWireResult};
use datafusion_postgres::pgwire::messages::startup::Authentication;
use datafusion_postgres::pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use futures::{Sink, SinkExt};
use quarry_engine::QueryEngine;
use quarry_segment_store::DEFAULT_ENVIRONMENT;

use super::errors;
use super::session::{POSTGRES_VERSION, connection_session};
use crate::auth::Auth;

/// Authenticates connections and gives each the session of its environment.
pub(crate) struct Startup {
    auth: Arc<Auth>,
    engine: Arc<QueryEngine>,
    /// Where cancel requests find the connection running the query.
    connections: Arc<ConnectionManager>,
    parameters: DefaultServerParameterProvider,
    pids: RandomPidSecretKeyGenerator,
}

impl Startup {
    pub(crate) fn new(
        auth: Arc<Auth>,
        engine: Arc<QueryEngine>,
        connections: Arc<ConnectionManager>,
    ) -> Self {
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = POSTGRES_VERSION.to_owned();
        Startup {
            auth,
            engine,
            connections,
            parameters,
            pids: RandomPidSecretKeyGenerator::default(),
        }
    }

    /// Opens the session of `environment` for the connection, registers it for
    /// cancel requests and tells the client it is in.
    async fn admit<C>(&self, client: &mut C, environment: &str) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let session = connection_session(&self.engine, environment).map_err(errors::query_error)?;
        client.session_extensions().insert(session);
        let (pid, secret_key) = self.pids.generate(&*client);
        client.set_pid_and_secret_key(pid, secret_key.clone());
        let (handle, guard) = self.connections.register(pid, secret_key);
        client
            .session_extensions()
            .insert::<Arc<ConnectionHandle>>(handle);
        client.session_extensions().insert::<ConnectionGuard>(guard);
        tracing::debug!(environment, pid, "Postgres connection authenticated");
        finish_authentication(client, &self.parameters).await
    }
}

#[async_trait]
impl StartupHandler for Startup {
    async fn on_startup<C>(
        &self,
        client: &mut C,
        message: PgWireFrontendMessage,
    ) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match message {
            PgWireFrontendMessage::Startup(ref startup) => {
                protocol_negotiation(client, startup).await?;
                save_startup_parameters_to_metadata(client, startup);
                if self.auth.requires_key() {
                    client.set_state(PgWireConnectionState::AuthenticationInProgress);
                    client
                        .send(PgWireBackendMessage::Authentication(
                            Authentication::CleartextPassword,
                        ))
                        .await?;
                } else {
                    self.admit(client, DEFAULT_ENVIRONMENT).await?;
                }
            }
            PgWireFrontendMessage::PasswordMessageFamily(password) => {
                let password = password.into_password()?;
                let environment = self
                    .auth
                    .environment_of_key(&password.password)
                    .map(str::to_owned);
                match environment {
                    Some(environment) => self.admit(client, &environment).await?,
                    None => {
                        let user = client.metadata().get(METADATA_USER).cloned();
                        return Err(PgWireError::InvalidPassword(user.unwrap_or_default()));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
}
