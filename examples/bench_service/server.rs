//! The release `alis-import` server as a child process, on PostgreSQL, reading its
//! ALiS file from a local inbox folder.

use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::bench_support::service_binary;

/// How long the server may take to start serving.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running server; stopped (SIGTERM, then waited for) when dropped.
pub struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Server {
    /// Starts `alis-import serve` on a free loopback port against `database_url`,
    /// with `inbox` as its source folder and its scratch files under `work`.
    pub async fn start(database_url: &str, inbox: &Path, work: &Path) -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(work.join("server.log")).expect("server log");
        let mut command = Command::new(service_binary());
        for (name, _) in std::env::vars_os() {
            if name.to_str().is_some_and(|n| n.starts_with("ALIS_")) {
                command.env_remove(name);
            }
        }
        command
            .arg("serve")
            .env("ALIS_LISTEN", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", database_url)
            .env("ALIS_INBOX_DIR", inbox)
            .env("ALIS_WORK_DIR", work.join("service-work"))
            .env("ALIS_MIN_FILE_AGE", "0s")
            .env("ALIS_DEMO_DATA", "false")
            .env("RUST_LOG", "warn")
            .current_dir(work)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup"))
            .stderr(log);
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to SIGTERM the
        // child when this process dies, so a crashed benchmark leaves no server behind.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = command.spawn().expect("start the alis-import server");
        let server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        server.wait_until_serving().await;
        server
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A new connection (HTTP/2 channel) to the server.
    pub async fn channel(&self) -> Channel {
        Endpoint::from_shared(self.url.clone())
            .expect("server URL")
            .connect()
            .await
            .expect("connect to the server")
    }

    async fn wait_until_serving(&self) {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(channel) = Endpoint::from_shared(self.url.clone())
                .expect("server URL")
                .connect()
                .await
            {
                let reply = HealthClient::new(channel)
                    .check(HealthCheckRequest::default())
                    .await;
                if reply.is_ok_and(|r| r.get_ref().status == ServingStatus::Serving as i32) {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "the server did not start serving within {START_TIMEOUT:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
            // SAFETY: signals our own child, which has not been waited for yet.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let _ = self.child.wait();
    }
}
