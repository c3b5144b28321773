//! One SSH connection with an SFTP session on it: TCP connect, handshake with the
//! pinned host key check, login, SFTP subsystem, each step under its own time limit.

use std::borrow::Cow;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use russh::client::{self, AuthResult, Handle};
use russh::keys::{
    Algorithm, EcdsaCurve, PrivateKeyWithHashAlg, PublicKeyOrCertificate, decode_secret_key,
};
use russh::{ChannelMsg, Disconnect, Preferred, cipher};
use russh_sftp::client::SftpSession;
use secrecy::ExposeSecret;
use tokio::net::TcpStream;

use super::{HostKeyFingerprint, SftpCredentials, SftpError, SftpSettings, TimeoutPhase};

/// The ciphers offered, best first: russh's own order, but AES-GCM before
/// ChaCha20-Poly1305. Both are authenticated encryption; AES-GCM runs in aws-lc on the
/// CPU's AES instructions and downloaded the 200 MB benchmark file faster
/// (BENCHMARKS.md, benchmark 3). A server without AES-GCM still gets ChaCha20.
const CIPHERS: &[cipher::Name] = &[
    cipher::AES_256_GCM,
    cipher::CHACHA20_POLY1305,
    cipher::AES_256_CTR,
    cipher::AES_192_CTR,
    cipher::AES_128_CTR,
];

/// The host key types this client can verify. russh is built without its `rsa`
/// feature (RUSTSEC-2023-0071), so RSA signatures cannot be checked; offering RSA
/// anyway would make an RSA-only server fail with a misleading "wrong server
/// signature" instead of a clear "no common key algorithm" naming both lists.
const HOST_KEY_ALGORITHMS: &[Algorithm] = &[
    Algorithm::Ed25519,
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP256,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP384,
    },
    Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP521,
    },
];

/// An authenticated SSH connection and the SFTP session running on it.
pub(super) struct Connection {
    handle: Handle<PinnedHostKey>,
    pub(super) sftp: SftpSession,
}

impl Connection {
    /// Whether the SSH connection has ended (server closed it, network failure,
    /// inactivity): the session cannot be used any more.
    pub(super) fn is_closed(&self) -> bool {
        self.handle.is_closed()
    }

    /// Ends the SFTP session and says goodbye to the server, without waiting long.
    pub(super) async fn close(self) {
        let goodbye = async {
            let _ = self.sftp.close().await;
            let _ = self
                .handle
                .disconnect(Disconnect::ByApplication, "done", "en")
                .await;
        };
        let _ = tokio::time::timeout(Duration::from_secs(2), goodbye).await;
    }
}

/// The russh client handler: accepts the server only if its host key's SHA-256
/// fingerprint is one of the pinned ones, and remembers the key it was shown so that
/// a mismatch can name it (russh itself only reports "unknown key").
struct PinnedHostKey {
    pinned: Arc<[HostKeyFingerprint]>,
    presented: Arc<Mutex<Option<HostKeyFingerprint>>>,
}

impl client::Handler for PinnedHostKey {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        // For a host certificate, the certified key is what `ssh-keygen -lf` shows for
        // the server's key file; the certificate's signer is not trusted on its own.
        let presented = HostKeyFingerprint::of(&server_key.public_key());
        let trusted = self.pinned.contains(&presented);
        *self
            .presented
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(presented);
        Ok(trusted)
    }
}

/// Connects, checks the host key, logs in and starts SFTP.
///
/// Order matters for security: the host key is checked during the key exchange, and
/// authentication starts only after `connect_stream` returned, i.e. only for a
/// server whose key is pinned, so a wrong server never sees the password.
pub(super) async fn connect(
    settings: &SftpSettings,
    credentials: &SftpCredentials,
) -> Result<Connection, SftpError> {
    let host = credentials.host.as_str();
    let port = credentials.port;
    let timeout = |phase, after| SftpError::Timeout {
        host: host.to_owned(),
        port,
        phase,
        after,
    };
    let handshake_error = |error: russh::Error| SftpError::Handshake {
        host: host.to_owned(),
        port,
        detail: error.to_string(),
    };

    let tcp = tokio::time::timeout(settings.connect_timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| timeout(TimeoutPhase::Connect, settings.connect_timeout))?
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::ConnectionRefused {
                SftpError::ConnectionRefused {
                    host: host.to_owned(),
                    port,
                }
            } else {
                SftpError::Unreachable {
                    host: host.to_owned(),
                    port,
                    source,
                }
            }
        })?;
    // Small request packets (SFTP reads) should not wait for Nagle.
    let _ = tcp.set_nodelay(true);

    let presented = Arc::new(Mutex::new(None));
    let handler = PinnedHostKey {
        pinned: credentials.fingerprints.clone().into(),
        presented: presented.clone(),
    };
    let config = Arc::new(client::Config {
        preferred: Preferred {
            key: Cow::Borrowed(HOST_KEY_ALGORITHMS),
            cipher: Cow::Borrowed(CIPHERS),
            ..Preferred::default()
        },
        inactivity_timeout: Some(settings.inactivity_timeout),
        keepalive_interval: Some(settings.keepalive_interval),
        keepalive_max: 3,
        window_size: settings.window_size,
        nodelay: true,
        ..client::Config::default()
    });
    let handshake = client::connect_stream(config, tcp, handler);
    let mut handle = match tokio::time::timeout(settings.handshake_timeout, handshake).await {
        Err(_) => return Err(timeout(TimeoutPhase::Handshake, settings.handshake_timeout)),
        Ok(Ok(handle)) => handle,
        Ok(Err(error)) => {
            let presented = presented
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            return Err(match presented {
                Some(presented) if !credentials.fingerprints.contains(&presented) => {
                    SftpError::HostKeyMismatch {
                        host: host.to_owned(),
                        port,
                        presented,
                        expected: credentials.fingerprints.clone(),
                    }
                }
                _ => handshake_error(error),
            });
        }
    };

    let login = async {
        authenticate(&mut handle, credentials).await?;
        start_sftp(&handle, settings, credentials).await
    };
    match tokio::time::timeout(settings.handshake_timeout, login).await {
        Err(_) => Err(timeout(TimeoutPhase::Login, settings.handshake_timeout)),
        Ok(Err(error)) => Err(error),
        Ok(Ok(sftp)) => Ok(Connection { handle, sftp }),
    }
}

/// Public key first when one is configured, then the password unless it is empty.
async fn authenticate(
    handle: &mut Handle<PinnedHostKey>,
    credentials: &SftpCredentials,
) -> Result<(), SftpError> {
    let host = credentials.host.as_str();
    let port = credentials.port;
    let lost = |error: russh::Error| SftpError::Handshake {
        host: host.to_owned(),
        port,
        detail: format!("connection lost while logging in: {error}"),
    };
    let mut last = None;
    if let Some(private_key) = &credentials.private_key {
        let key = decode_secret_key(private_key.expose_secret(), None).map_err(|error| {
            SftpError::PrivateKey {
                detail: error.to_string(),
            }
        })?;
        let hash = handle
            .best_supported_rsa_hash()
            .await
            .map_err(lost)?
            .flatten();
        let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
        let result = handle
            .authenticate_publickey(credentials.username.as_str(), key)
            .await
            .map_err(lost)?;
        match result {
            AuthResult::Success => return Ok(()),
            failure => last = Some(failure),
        }
    }
    if !credentials.password.expose_secret().is_empty() {
        let result = handle
            .authenticate_password(
                credentials.username.as_str(),
                credentials.password.expose_secret(),
            )
            .await
            .map_err(lost)?;
        match result {
            AuthResult::Success => return Ok(()),
            failure => last = Some(failure),
        }
    }
    let methods = match last {
        Some(AuthResult::Failure {
            remaining_methods, ..
        }) => remaining_methods
            .iter()
            .map(<&'static str>::from)
            .collect::<Vec<_>>()
            .join(", "),
        _ => "no password or key configured".to_owned(),
    };
    Err(SftpError::AuthRefused {
        host: host.to_owned(),
        port,
        username: credentials.username.clone(),
        methods,
    })
}

async fn start_sftp(
    handle: &Handle<PinnedHostKey>,
    settings: &SftpSettings,
    credentials: &SftpCredentials,
) -> Result<SftpSession, SftpError> {
    let refused = |detail: String| SftpError::SubsystemRefused {
        host: credentials.host.clone(),
        port: credentials.port,
        detail,
    };
    let mut channel = handle
        .channel_open_session()
        .await
        .map_err(|error| refused(format!("cannot open a session channel: {error}")))?;
    channel
        .request_subsystem(true, "sftp")
        .await
        .map_err(|error| refused(error.to_string()))?;
    loop {
        match channel.wait().await {
            Some(ChannelMsg::Success) => break,
            Some(ChannelMsg::Failure) => return Err(refused("the request was denied".into())),
            Some(ChannelMsg::Close | ChannelMsg::Eof) | None => {
                return Err(refused("the channel was closed".into()));
            }
            // Window adjustments and the like may come first.
            Some(_) => continue,
        }
    }
    let config = russh_sftp::client::Config {
        max_concurrent_reads: settings.concurrent_reads.max(1),
        request_timeout_secs: settings.inactivity_timeout.as_secs().max(1),
        ..russh_sftp::client::Config::default()
    };
    SftpSession::new_with_config(channel.into_stream(), config)
        .await
        .map_err(|error| refused(format!("the SFTP session did not start: {error}")))
}
