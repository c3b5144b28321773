//! Building and running the service: [`Application::build`] opens the database,
//! binds the port and wires the API, the worker and the scheduler;
//! [`Application::run_until_stopped`] serves until the shutdown future completes, then
//! stops in order: health NOT_SERVING, drain RPCs, cancel jobs (an import in flight
//! rolls back; the Vault token renewal stops), close the pool. `main` then flushes
//! telemetry, last.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Identity as TlsIdentity, Server, ServerTlsConfig};

use crate::api::CertImportApi;
use crate::api::auth::{Authentication, Authenticator};
use crate::api::proto::cert_import_service_server::CertImportServiceServer;
use crate::clock::{Clock, SystemClock};
use crate::config::ServiceConfig;
use crate::scheduler::{Scheduler, SchedulerSettings};
use crate::secrets::{SecretsProvider, VaultSecrets};
use crate::store::Store;
use crate::worker::{Worker, WorkerSettings};

/// A built service, bound to its port, not yet serving.
pub struct Application {
    listener: tokio::net::TcpListener,
    store: Store,
    api: CertImportApi,
    worker: Worker,
    scheduler: Scheduler,
    /// Keeps the Vault token alive between runs, when Vault is the secrets provider.
    vault_renewal: Option<VaultSecrets>,
    authentication: Authentication,
    tls: Option<ServerTlsConfig>,
    cancel: CancellationToken,
}

impl std::fmt::Debug for Application {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Application")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl Application {
    /// Opens the database (applying migrations), writes the demo data when asked, binds
    /// the listen address (port 0 picks a free one).
    pub async fn build(config: &ServiceConfig) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], with the clock the scheduler and runs use.
    pub async fn build_with_clock(
        config: &ServiceConfig,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        Self::build_with(config, clock, None).await
    }

    /// As [`Application::build_with_clock`], with a gate every import waits at before
    /// its replace (see [`WorkerSettings::replace_gate`]): for tests and fault injection.
    pub async fn build_with(
        config: &ServiceConfig,
        clock: Arc<dyn Clock>,
        replace_gate: Option<Arc<tokio::sync::Semaphore>>,
    ) -> anyhow::Result<Self> {
        let authentication =
            match Authenticator::from_args(&config.auth).context("authentication settings")? {
                Some(authenticator) => Authentication::Tokens(Arc::new(authenticator)),
                None if config.listen.ip().is_loopback() => {
                    tracing::warn!(
                        "no authentication configured: every caller is {:?}, loopback only",
                        config.local_operator
                    );
                    Authentication::Local(config.local_operator.clone())
                }
                None => anyhow::bail!(
                    "refusing to listen on {} without authentication: configure token keys \
                 (--auth-public-key-file or --auth-jwks-file), or listen on a loopback \
                 address such as 127.0.0.1",
                    config.listen
                ),
            };
        let tls = tls_config(config)?;
        let time_zone = jiff::tz::TimeZone::get(&config.time_zone)
            .with_context(|| format!("unknown time zone {:?} (--time-zone)", config.time_zone))?;
        let secrets = config
            .source
            .secrets_provider()
            .context("the SFTP credentials' settings")?
            .map(Arc::new);
        let sources = config.source.source_factory(
            &config.inbox_dir,
            config.max_file_size,
            secrets.clone(),
        )?;
        tracing::info!(source = %sources, "ALiS files come from this source");
        let vault_renewal = match secrets.as_deref() {
            Some(SecretsProvider::Vault(vault)) => Some(vault.clone()),
            _ => None,
        };
        let store = config.database.open().await?;
        if config.demo_data {
            crate::demo::seed_if_empty(&store, config, clock.now())
                .await
                .context("writing the demo data")?;
        }
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("cannot listen on {}", config.listen))?;

        let cancel = CancellationToken::new();
        let mut import = config.import_settings();
        import.lock.clock = Arc::clone(&clock);
        let worker = Worker::new(
            store.clone(),
            WorkerSettings {
                import,
                sources,
                work_dir: config.work_dir.clone(),
                fetch: crate::fetch::FetchSettings {
                    min_age: config.min_file_age,
                    max_file_size: config.max_file_size,
                },
                district_name: config.district_name.clone(),
                time_zone,
                heartbeat_interval: config.heartbeat_interval,
                replace_gate,
                pause_files: crate::worker::PauseFiles {
                    before_replace: config.test_pause_before_replace_file.clone(),
                    before_commit: config.test_pause_before_commit_file.clone(),
                },
            },
            Arc::clone(&clock),
            config.instance(),
            cancel.child_token(),
        );
        let scheduler = Scheduler::new(
            store.clone(),
            worker.clone(),
            Arc::clone(&clock),
            SchedulerSettings {
                interval: config.scheduler_interval,
                heartbeat_timeout: config.heartbeat_timeout,
                catch_up_window: config.catch_up_window,
                busy_wait: config.busy_wait,
            },
        );
        let api = CertImportApi::new(store.clone(), worker.clone(), clock, cancel.child_token())
            .with_lease_max_ttl(config.lease_max_ttl);
        Ok(Self {
            listener,
            store,
            api,
            worker,
            scheduler,
            vault_renewal,
            authentication,
            tls,
            cancel,
        })
    }

    /// The address it listens on (the real port when 0 was asked for).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The store it uses (tests inspect it).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The scheduler (tests drive it directly).
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }

    /// Serves until `shutdown` completes, then stops in order.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (health_reporter, health_service) = tonic_health::server::health_reporter();
        health_reporter
            .set_serving::<CertImportServiceServer<CertImportApi>>()
            .await;
        let reflection_v1 = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::api::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("building reflection")?;
        // grpcurl 1.8 only speaks the older v1alpha reflection.
        let reflection_v1alpha = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(crate::api::proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1alpha()
            .context("building reflection")?;
        let service = CertImportServiceServer::with_interceptor(
            self.api.clone(),
            self.authentication.clone(),
        );

        let jobs = tokio::spawn(
            self.scheduler
                .clone()
                .run_until_stopped(self.cancel.child_token()),
        );
        let vault_renewal = self.vault_renewal.clone().map(|vault| {
            let cancel = self.cancel.child_token();
            // The job stops between renewals by itself; a request in flight at
            // shutdown is dropped rather than waited for (up to Vault's timeout).
            tokio::spawn(async move {
                tokio::select! {
                    () = vault.run_until_stopped(cancel.clone()) => {}
                    () = cancel.cancelled() => {}
                }
            })
        });
        let cancel = self.cancel.clone();
        let reporter = health_reporter.clone();
        let drain_signal = async move {
            shutdown.await;
            tracing::info!("shutting down: health NOT_SERVING, draining requests");
            reporter
                .set_not_serving::<CertImportServiceServer<CertImportApi>>()
                .await;
            // Streams (WatchRun) end so the drain can finish.
            cancel.cancel();
        };
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(self.listener);
        tracing::info!(addr = ?incoming.as_ref().local_addr().ok(), "serving gRPC");
        let mut builder = Server::builder();
        if let Some(tls) = self.tls.clone() {
            builder = builder.tls_config(tls).context("TLS settings")?;
        }
        let served = builder
            // Outermost: every call gets its span, with the caller's trace as parent,
            // before authentication can refuse it.
            .layer(crate::telemetry::RpcSpanLayer)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha)
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, drain_signal)
            .await;

        self.cancel.cancel();
        let _ = jobs.await;
        if let Some(renewal) = vault_renewal {
            let _ = renewal.await;
        }
        self.worker.wait().await;
        self.store.close().await;
        tracing::info!("stopped");
        served.context("gRPC server failed")
    }
}

/// The server's TLS settings, when a certificate is configured.
fn tls_config(config: &ServiceConfig) -> anyhow::Result<Option<ServerTlsConfig>> {
    let (Some(cert), Some(key)) = (&config.tls_cert_file, &config.tls_key_file) else {
        return Ok(None);
    };
    let read = |path: &std::path::PathBuf| {
        std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))
    };
    let mut tls = ServerTlsConfig::new().identity(TlsIdentity::from_pem(read(cert)?, read(key)?));
    if let Some(ca) = &config.tls_client_ca_file {
        tls = tls.client_ca_root(Certificate::from_pem(read(ca)?));
    }
    Ok(Some(tls))
}
