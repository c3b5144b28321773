//! The Vault secrets provider against a real OpenBao dev server on loopback: token and
//! AppRole authentication, rotation, token renewal and re-login, and the errors an
//! operator sees when Vault is down or the policy is wrong.

#[path = "support/openbao.rs"]
mod openbao;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use alis_import::secrets::{
    SecretsError, SecretsProvider, TokenStatus, VaultAuth, VaultSecrets, VaultSettings,
};
use secrecy::ExposeSecret;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use openbao::OpenBao;

const FINGERPRINT: &str = "SHA256:alqSNwBJ+rjsYgipC3a0hbUlqGtBbQM67vCQiWMH90w";
const NEXT_FINGERPRINT: &str = "SHA256:KFsSVvlNy5RXpAe4PBQopHqJ0OII3jKu6k9279lJ3pM";

/// Writes a complete credentials secret at `secret/PATH`.
fn put_credentials(bao: &OpenBao, path: &str, password: &str) {
    bao.put_secret(
        path,
        &[
            ("hostname", "sftp.education.vermont.gov"),
            ("port", "2222"),
            ("username", "district-42"),
            ("password", password),
            ("fingerprint", FINGERPRINT),
        ],
    );
}

fn token_settings(bao: &OpenBao, path: &str, token: &str) -> VaultSettings {
    VaultSettings::new(bao.address(), path, VaultAuth::Token(token.into()))
}

/// A token that may read `secret/PATH` and nothing else.
fn reader_token(bao: &OpenBao, path: &str, ttl: &str) -> String {
    let policy = format!("read-{}", path.replace('/', "-"));
    bao.read_policy(&policy, path);
    bao.create_token(&[&policy], ttl, true)
}

/// Everything tracing (and the `log` bridge) wrote in this test process, at TRACE.
fn captured_logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || BufferWriter(writer.clone()))
            .try_init()
            .expect("install the capturing subscriber");
        logs
    })
}

struct BufferWriter(Arc<Mutex<Vec<u8>>>);

impl Write for BufferWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn logs_text() -> String {
    String::from_utf8_lossy(&captured_logs().lock().unwrap()).into_owned()
}

/// Polls `status` until `done` holds, for at most `within`.
async fn wait_for_status(
    vault: &VaultSecrets,
    within: Duration,
    done: impl Fn(&TokenStatus) -> bool,
) -> TokenStatus {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let status = vault.token_status().await;
        if done(&status) || tokio::time::Instant::now() >= deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn credentials_are_read_with_a_token() {
    captured_logs();
    let bao = OpenBao::start();
    let path = "alis/token-read";
    bao.put_secret_json(
        path,
        json!({
            "hostname": "sftp.education.vermont.gov",
            "port": 2222,
            "username": "district-42",
            "password": "token-read-Pa55",
            "fingerprint": format!("{FINGERPRINT}, {NEXT_FINGERPRINT}"),
            "unrelated": {"nested": true},
        }),
    );
    let token = reader_token(&bao, path, "1h");
    let provider =
        SecretsProvider::Vault(VaultSecrets::new(token_settings(&bao, path, &token)).unwrap());

    let credentials = provider.sftp_credentials().await.unwrap();

    assert_eq!(credentials.host, "sftp.education.vermont.gov");
    assert_eq!(credentials.port, 2222);
    assert_eq!(credentials.username, "district-42");
    assert_eq!(credentials.password.expose_secret(), "token-read-Pa55");
    let fingerprints: Vec<String> = credentials
        .fingerprints
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(fingerprints, [FINGERPRINT, NEXT_FINGERPRINT]);
    for shown in [
        format!("{provider:?}"),
        provider.to_string(),
        format!("{credentials:?}"),
        logs_text(),
    ] {
        assert!(!shown.contains(&token), "token leaked: {shown}");
        assert!(!shown.contains("token-read-Pa55"), "password leaked");
    }
}

#[tokio::test]
async fn approle_logs_in_and_reads_without_showing_its_secret_id() {
    captured_logs();
    let bao = OpenBao::start();
    let path = "alis/approle";
    put_credentials(&bao, path, "approle-Pa55");
    bao.read_policy("alis-reader", path);
    bao.enable_approle();
    let (role_id, secret_id) = bao.create_approle(
        "alis-import",
        &["alis-reader"],
        json!({ "token_ttl": "1h" }),
    );
    let vault = VaultSecrets::new(VaultSettings::new(
        bao.address(),
        path,
        VaultAuth::AppRole {
            mount: "approle".into(),
            role_id,
            secret_id: secret_id.clone().into(),
        },
    ))
    .unwrap();

    let credentials = vault.sftp_credentials().await.unwrap();
    let status = vault.token_status().await;

    assert_eq!(credentials.password.expose_secret(), "approle-Pa55");
    assert_eq!(status.logins, 1);
    assert!(status.renewable);
    assert!(
        status
            .expires_in
            .is_some_and(|left| left > Duration::from_secs(3000))
    );
    for shown in [format!("{vault:?}"), vault.to_string(), logs_text()] {
        assert!(!shown.contains(&secret_id), "secret ID leaked: {shown}");
        assert!(!shown.contains("approle-Pa55"), "password leaked");
    }
}

#[tokio::test]
async fn a_password_rotated_in_vault_is_used_by_the_next_read() {
    let bao = OpenBao::start();
    let path = "alis/rotation";
    put_credentials(&bao, path, "before-rotation");
    let token = reader_token(&bao, path, "1h");
    let vault = VaultSecrets::new(token_settings(&bao, path, &token)).unwrap();

    let before = vault.sftp_credentials().await.unwrap();
    put_credentials(&bao, path, "after-rotation");
    let after = vault.sftp_credentials().await.unwrap();

    assert_eq!(before.password.expose_secret(), "before-rotation");
    assert_eq!(after.password.expose_secret(), "after-rotation");
}

#[tokio::test]
async fn vault_stopped_is_a_clear_unreachable_error() {
    let mut bao = OpenBao::start();
    let path = "alis/stopped";
    put_credentials(&bao, path, "stopped-Pa55");
    let token = reader_token(&bao, path, "1h");
    let vault = VaultSecrets::new(token_settings(&bao, path, &token)).unwrap();
    vault.sftp_credentials().await.unwrap();

    bao.stop();
    let started = std::time::Instant::now();
    let error = vault.sftp_credentials().await.unwrap_err();

    assert!(
        matches!(error, SecretsError::Unreachable { .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("Vault unreachable at {}", bao.address())),
        "{message}"
    );
    assert!(!message.contains(&token), "{message}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn a_policy_without_read_on_the_path_is_a_clear_permission_error() {
    let bao = OpenBao::start();
    let path = "alis/forbidden";
    put_credentials(&bao, path, "forbidden-Pa55");
    bao.read_policy("reads-something-else", "alis/something-else");
    let token = bao.create_token(&["reads-something-else"], "1h", true);
    let vault = VaultSecrets::new(token_settings(&bao, path, &token)).unwrap();

    let error = vault.sftp_credentials().await.unwrap_err();

    assert!(
        matches!(&error, SecretsError::PermissionDenied { path, .. } if path == "secret/alis/forbidden"),
        "{error:?}"
    );
    assert_eq!(error.kind(), "vault_permission_denied");
    let message = error.to_string();
    assert!(
        message.starts_with("permission denied reading secret/alis/forbidden"),
        "{message}"
    );
    assert!(!message.contains(&token) && !format!("{error:?}").contains(&token));
}

#[tokio::test]
async fn a_missing_secret_and_a_missing_key_are_named() {
    let bao = OpenBao::start();
    bao.put_secret(
        "alis/incomplete",
        &[
            ("hostname", "sftp.education.vermont.gov"),
            ("username", "district-42"),
            ("password", "incomplete-Pa55"),
        ],
    );
    let root = bao.root_token().to_owned();
    let missing = VaultSecrets::new(token_settings(&bao, "alis/nothing-here", &root)).unwrap();
    let incomplete = VaultSecrets::new(token_settings(&bao, "alis/incomplete", &root)).unwrap();

    let not_found = missing.sftp_credentials().await.unwrap_err();
    let no_key = incomplete.sftp_credentials().await.unwrap_err();

    assert!(
        matches!(not_found, SecretsError::NotFound { .. }),
        "{not_found:?}"
    );
    assert!(
        not_found
            .to_string()
            .starts_with("no secret at secret/alis/nothing-here"),
        "{not_found}"
    );
    assert!(
        matches!(
            no_key,
            SecretsError::MissingKey {
                key: "fingerprint",
                ..
            }
        ),
        "{no_key:?}"
    );
    assert_eq!(
        no_key.to_string(),
        "the Vault secret secret/alis/incomplete has no `fingerprint` value"
    );
}

#[tokio::test]
async fn a_short_lived_token_is_kept_alive_by_renewal() {
    let bao = OpenBao::start();
    let path = "alis/renewal";
    put_credentials(&bao, path, "renewal-Pa55");
    // Renewed after two thirds of its 3 s: without renewal it would be dead by the
    // time two renewals have happened.
    let token = reader_token(&bao, path, "3s");
    let vault = VaultSecrets::new(token_settings(&bao, path, &token)).unwrap();
    let cancel = CancellationToken::new();

    let status = {
        let renewing = vault.run_until_stopped(cancel.clone());
        let waiting = async {
            let status =
                wait_for_status(&vault, Duration::from_secs(20), |s| s.renewals >= 2).await;
            cancel.cancel();
            status
        };
        let ((), status) = tokio::join!(renewing, waiting);
        status
    };
    let credentials = vault.sftp_credentials().await.unwrap();

    assert!(status.renewals >= 2, "{status:?}");
    assert_eq!(status.logins, 0);
    assert_eq!(credentials.password.expose_secret(), "renewal-Pa55");
    assert!(
        bao.lookup_token(&token)["last_renewal_time"]
            .as_i64()
            .is_some(),
        "{}",
        bao.lookup_token(&token)
    );
}

#[tokio::test]
async fn a_token_that_cannot_be_renewed_is_replaced_by_a_fresh_login() {
    let bao = OpenBao::start();
    let path = "alis/relogin";
    put_credentials(&bao, path, "relogin-Pa55");
    bao.read_policy("alis-reader", path);
    bao.enable_approle();
    // Batch tokens are never renewable.
    let (role_id, secret_id) = bao.create_approle(
        "alis-import",
        &["alis-reader"],
        json!({ "token_type": "batch", "token_ttl": "3s" }),
    );
    let vault = VaultSecrets::new(VaultSettings::new(
        bao.address(),
        path,
        VaultAuth::AppRole {
            mount: "approle".into(),
            role_id,
            secret_id: secret_id.into(),
        },
    ))
    .unwrap();
    let cancel = CancellationToken::new();

    let status = {
        let renewing = vault.run_until_stopped(cancel.clone());
        let waiting = async {
            let status = wait_for_status(&vault, Duration::from_secs(20), |s| s.logins >= 3).await;
            cancel.cancel();
            status
        };
        let ((), status) = tokio::join!(renewing, waiting);
        status
    };
    let credentials = vault.sftp_credentials().await.unwrap();

    assert!(status.logins >= 3, "{status:?}");
    assert_eq!(status.renewals, 0);
    assert!(!status.renewable);
    assert_eq!(credentials.password.expose_secret(), "relogin-Pa55");
}

#[tokio::test]
async fn a_revoked_approle_token_is_replaced_at_the_next_read() {
    let bao = OpenBao::start();
    let path = "alis/revoked";
    put_credentials(&bao, path, "revoked-Pa55");
    bao.read_policy("alis-reader", path);
    bao.enable_approle();
    let (role_id, secret_id) = bao.create_approle(
        "alis-import",
        &["alis-reader"],
        json!({ "token_ttl": "1h" }),
    );
    let vault = VaultSecrets::new(VaultSettings::new(
        bao.address(),
        path,
        VaultAuth::AppRole {
            mount: "approle".into(),
            role_id,
            secret_id: secret_id.into(),
        },
    ))
    .unwrap();
    vault.sftp_credentials().await.unwrap();

    // Every token AppRole has issued.
    bao.api("PUT", "sys/leases/revoke-prefix/auth/approle/login", None);
    let credentials = vault.sftp_credentials().await.unwrap();

    assert_eq!(credentials.password.expose_secret(), "revoked-Pa55");
    assert_eq!(vault.token_status().await.logins, 2);
}

#[tokio::test]
async fn a_wrong_approle_secret_id_is_a_login_error() {
    let bao = OpenBao::start();
    let path = "alis/bad-login";
    put_credentials(&bao, path, "bad-login-Pa55");
    bao.read_policy("alis-reader", path);
    bao.enable_approle();
    let (role_id, _) = bao.create_approle(
        "alis-import",
        &["alis-reader"],
        json!({ "token_ttl": "1h" }),
    );
    let wrong_secret_id = "00000000-1111-2222-3333-444444444444";
    let vault = VaultSecrets::new(VaultSettings::new(
        bao.address(),
        path,
        VaultAuth::AppRole {
            mount: "approle".into(),
            role_id,
            secret_id: wrong_secret_id.into(),
        },
    ))
    .unwrap();

    let error = vault.sftp_credentials().await.unwrap_err();

    assert!(
        matches!(
            error,
            SecretsError::LoginFailed {
                method: "AppRole",
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .starts_with(&format!("Vault AppRole login at {} failed", bao.address())),
        "{error}"
    );
    assert!(!error.to_string().contains(wrong_secret_id));
}

/// Vault insists on a Kubernetes CA certificate even for a plain-HTTP API; this
/// self-signed one is never used to verify anything.
const FAKE_KUBERNETES_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBkjCCATegAwIBAgIUNn2mMQ7Uu+A+F0tzYieCmA86ITkwCgYIKoZIzj0EAwIw
HTEbMBkGA1UEAwwSZmFrZS1rdWJlcm5ldGVzLWNhMCAXDTI2MTEzMDAzNTIwMloY
DzIxMjYxMTA2MDM1MjAyWjAdMRswGQYDVQQDDBJmYWtlLWt1YmVybmV0ZXMtY2Ew
WTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAASQS3g//iFg4hiW/U6nzOL0g4a9z8hE
4n4xxKcOlWcbdogc9/tNfWRUGQESnTKuPyO4I2+pX8PY+EmNZeOBStKco1MwUTAd
BgNVHQ4EFgQUKGc41B7l/PJ1DRnN3IUaxWAbc54wHwYDVR0jBBgwFoAUKGc41B7l
/PJ1DRnN3IUaxWAbc54wDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNJADBG
AiEA7pv83unZ6CbuYBI+wds5PXQe/uXrZMzzKX39Dr8XtX8CIQD0roICRvrSirM/
oxyAM5+vSx+omcJA5J8aVzJB3ZsTnQ==
-----END CERTIFICATE-----";

/// base64url without padding, for the test JWT.
fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

/// A service-account token as Kubernetes issues it (legacy claims). Its signature is
/// not checked by Vault: the token review below vouches for it.
fn service_account_jwt(namespace: &str, name: &str, uid: &str) -> String {
    let header = json!({ "alg": "RS256", "typ": "JWT", "kid": "test" });
    let claims = json!({
        "iss": "kubernetes/serviceaccount",
        "sub": format!("system:serviceaccount:{namespace}:{name}"),
        "kubernetes.io/serviceaccount/namespace": namespace,
        "kubernetes.io/serviceaccount/secret.name": format!("{name}-token"),
        "kubernetes.io/serviceaccount/service-account.name": name,
        "kubernetes.io/serviceaccount/service-account.uid": uid,
    });
    format!(
        "{}.{}.{}",
        base64url(header.to_string().as_bytes()),
        base64url(claims.to_string().as_bytes()),
        base64url(b"not-a-real-signature")
    )
}

/// A stand-in for the Kubernetes API's TokenReview endpoint: vouches for `jwt` as
/// the service account `namespace/name`, refuses anything else. Returns its port and
/// the number of reviews it answered.
async fn fake_token_review_api(
    jwt: String,
    namespace: &'static str,
    name: &'static str,
    uid: &'static str,
) -> (u16, Arc<Mutex<u32>>, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let reviews = Arc::new(Mutex::new(0));
    let counter = reviews.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let mut request = Vec::new();
            let mut buffer = [0; 4096];
            // Headers, then as much body as Content-Length says.
            let body = loop {
                let n = stream.read(&mut buffer).await.unwrap_or(0);
                if n == 0 {
                    break None;
                }
                request.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&request).into_owned();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|line| {
                            let (key, value) = line.split_once(':')?;
                            key.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        break Some(body.to_owned());
                    }
                }
            };
            let Some(body) = body else { continue };
            let review: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let authenticated = review["spec"]["token"].as_str() == Some(jwt.as_str());
            *counter.lock().unwrap() += 1;
            let answer = json!({
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenReview",
                "status": {
                    "authenticated": authenticated,
                    "user": {
                        "username": format!("system:serviceaccount:{namespace}:{name}"),
                        "uid": uid,
                        "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{namespace}")],
                    },
                },
            })
            .to_string();
            let response = format!(
                "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{answer}",
                answer.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        }
    });
    (port, reviews, task)
}

#[tokio::test]
async fn kubernetes_auth_logs_in_with_the_service_account_token_file() {
    let bao = OpenBao::start();
    let path = "alis/kubernetes";
    put_credentials(&bao, path, "kubernetes-Pa55");
    bao.read_policy("alis-reader", path);
    let jwt = service_account_jwt("district", "alis-import", "9f0c6a52-uid");
    let (api_port, reviews, api) =
        fake_token_review_api(jwt.clone(), "district", "alis-import", "9f0c6a52-uid").await;
    bao.api(
        "POST",
        "sys/auth/kubernetes",
        Some(json!({ "type": "kubernetes" })),
    );
    bao.api(
        "POST",
        "auth/kubernetes/config",
        Some(json!({
            "kubernetes_host": format!("http://127.0.0.1:{api_port}"),
            "disable_local_ca_jwt": true,
            "kubernetes_ca_cert": FAKE_KUBERNETES_CA,
        })),
    );
    bao.api(
        "POST",
        "auth/kubernetes/role/alis-import",
        Some(json!({
            "bound_service_account_names": ["alis-import"],
            "bound_service_account_namespaces": ["district"],
            "token_policies": ["alis-reader"],
            "token_ttl": "1h",
        })),
    );
    let pod = tempfile::tempdir().unwrap();
    let jwt_path = pod.path().join("token");
    std::fs::write(&jwt_path, format!("{jwt}\n")).unwrap();
    let vault = VaultSecrets::new(VaultSettings::new(
        bao.address(),
        path,
        VaultAuth::Kubernetes {
            mount: "kubernetes".into(),
            role: "alis-import".into(),
            jwt_path,
        },
    ))
    .unwrap();

    let credentials = vault.sftp_credentials().await;
    api.abort();

    let credentials = credentials.unwrap_or_else(|e| panic!("{e}\n{}", bao.log()));
    assert_eq!(credentials.password.expose_secret(), "kubernetes-Pa55");
    assert_eq!(vault.token_status().await.logins, 1);
    assert!(*reviews.lock().unwrap() >= 1);
}

#[tokio::test]
async fn a_missing_service_account_token_file_is_named() {
    // The file is read before Vault is contacted, so no server is needed.
    let vault = VaultSecrets::new(VaultSettings::new(
        "http://127.0.0.1:9",
        "alis/kubernetes",
        VaultAuth::Kubernetes {
            mount: "kubernetes".into(),
            role: "alis-import".into(),
            jwt_path: "/nonexistent/serviceaccount/token".into(),
        },
    ))
    .unwrap();

    let error = vault.sftp_credentials().await.unwrap_err();

    assert!(
        matches!(error, SecretsError::ServiceAccountToken { .. }),
        "{error:?}"
    );
    assert!(
        error
            .to_string()
            .contains("/nonexistent/serviceaccount/token"),
        "{error}"
    );
}
