//! Proves the test harness itself: the PostgreSQL server starts, gives every test a
//! database of its own, and stops when the test process exits; SQLite URLs work.

mod support;

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sqlx::{Connection, PgConnection, SqliteConnection};
use support::{Backend, PostgresServer};

/// Tells `child_reports_its_server` where to write its server's port and directory.
const REPORT_ENV: &str = "ALIS_HARNESS_SMOKE_REPORT";

async fn connect_pg(url: &str) -> PgConnection {
    PgConnection::connect(url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"))
}

async fn public_table_count(conn: &mut PgConnection) -> i64 {
    sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'",
    )
    .fetch_one(conn)
    .await
    .expect("count tables")
}

/// What each of the two parallel tests does: if they shared a database, one of them
/// would fail to create the table or would see the other's row.
async fn own_database_scenario(owner: &str) {
    let url = support::postgres_url().await;
    let mut conn = connect_pg(&url).await;
    assert_eq!(
        public_table_count(&mut conn).await,
        0,
        "fresh database is empty"
    );

    sqlx::query("CREATE TABLE smoke (owner TEXT NOT NULL)")
        .execute(&mut conn)
        .await
        .expect("create table in a fresh database");
    sqlx::query("INSERT INTO smoke (owner) VALUES ($1)")
        .bind(owner)
        .execute(&mut conn)
        .await
        .expect("insert");
    // Give the other test time to do the same, should it share our database.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let owners: Vec<String> = sqlx::query_scalar("SELECT owner FROM smoke")
        .fetch_all(&mut conn)
        .await
        .expect("select");
    assert_eq!(owners, [owner]);
}

#[tokio::test]
async fn parallel_test_a_gets_its_own_empty_database() {
    own_database_scenario("a").await;
}

#[tokio::test]
async fn parallel_test_b_gets_its_own_empty_database() {
    own_database_scenario("b").await;
}

#[tokio::test]
async fn databases_do_not_see_each_other() {
    let (url_a, url_b) = tokio::join!(support::postgres_url(), support::postgres_url());
    assert_ne!(url_a, url_b);

    let mut a = connect_pg(&url_a).await;
    sqlx::query("CREATE TABLE only_in_a (id INTEGER)")
        .execute(&mut a)
        .await
        .expect("create table in a");
    let mut b = connect_pg(&url_b).await;
    assert_eq!(public_table_count(&mut a).await, 1);
    assert_eq!(
        public_table_count(&mut b).await,
        0,
        "b must not see a's table"
    );
}

#[tokio::test]
async fn postgres_server_is_configured_for_tests() {
    let url = support::postgres_url().await;
    let server = PostgresServer::get();
    assert!(
        url.starts_with(&format!(
            "postgres://postgres@127.0.0.1:{}/test_",
            server.port()
        )),
        "{url}"
    );
    let mut conn = connect_pg(&url).await;
    for (setting, expected) in [
        ("listen_addresses", "127.0.0.1"),
        ("fsync", "off"),
        ("synchronous_commit", "off"),
        ("full_page_writes", "off"),
        ("max_connections", "300"),
        ("server_encoding", "UTF8"),
        ("lc_collate", "C"),
    ] {
        let value: String = sqlx::query_scalar("SELECT current_setting($1)")
            .bind(setting)
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("read setting {setting}: {e}"));
        assert_eq!(value, expected, "setting {setting}");
    }
}

#[tokio::test]
async fn sqlite_url_gives_a_working_database_in_the_directory() {
    let dir = support::temp_dir();
    let url = support::sqlite_url(dir.path());
    let mut conn = SqliteConnection::connect(&url)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    sqlx::query("CREATE TABLE smoke (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
        .execute(&mut conn)
        .await
        .expect("create table");
    sqlx::query("INSERT INTO smoke (name) VALUES ($1)")
        .bind("sqlite")
        .execute(&mut conn)
        .await
        .expect("insert");
    let name: String = sqlx::query_scalar("SELECT name FROM smoke")
        .fetch_one(&mut conn)
        .await
        .expect("select");
    assert_eq!(name, "sqlite");
    assert!(
        dir.path().join("test.db").is_file(),
        "database file is in the directory"
    );
}

#[tokio::test]
async fn every_backend_gives_a_fresh_working_database() {
    const CREATE: &str = "CREATE TABLE smoke (id INTEGER PRIMARY KEY, name TEXT NOT NULL)";
    const INSERT: &str = "INSERT INTO smoke (id, name) VALUES ($1, $2)";
    const COUNT: &str = "SELECT count(*) FROM smoke";

    for backend in Backend::ALL {
        let (url, _guard) = backend.fresh_database_url().await;
        // Same SQL on both: `$1` placeholders work on SQLite too.
        let count: i64 = match backend {
            Backend::Postgres => {
                let mut conn = connect_pg(&url).await;
                assert_eq!(public_table_count(&mut conn).await, 0, "{backend}: empty");
                sqlx::query(CREATE)
                    .execute(&mut conn)
                    .await
                    .expect("create");
                sqlx::query(INSERT)
                    .bind(1)
                    .bind(backend.to_string())
                    .execute(&mut conn)
                    .await
                    .expect("insert");
                sqlx::query_scalar(COUNT)
                    .fetch_one(&mut conn)
                    .await
                    .expect("count")
            }
            Backend::Sqlite => {
                let mut conn = SqliteConnection::connect(&url)
                    .await
                    .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
                sqlx::query(CREATE)
                    .execute(&mut conn)
                    .await
                    .expect("create");
                sqlx::query(INSERT)
                    .bind(1)
                    .bind(backend.to_string())
                    .execute(&mut conn)
                    .await
                    .expect("insert");
                sqlx::query_scalar(COUNT)
                    .fetch_one(&mut conn)
                    .await
                    .expect("count")
            }
        };
        assert_eq!(count, 1, "{backend}");
    }
}

#[test]
fn artifacts_dir_is_in_the_repository_and_writable() {
    let dir = support::artifacts_dir();
    assert!(dir.ends_with("test-artifacts"), "{}", dir.display());
    let file = dir.join("harness_smoke.txt");
    std::fs::write(&file, "written by harness_smoke\n").expect("write an artifact");
    assert_eq!(
        std::fs::read_to_string(&file).expect("read the artifact back"),
        "written by harness_smoke\n"
    );
}

/// Run on its own by `server_stops_when_the_test_process_exits` in a child process, to
/// report where its server is; run with the others, it checks the server answers.
#[tokio::test]
async fn child_reports_its_server() {
    let url = support::postgres_url().await;
    let one: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut connect_pg(&url).await)
        .await
        .expect("SELECT 1");
    assert_eq!(one, 1);
    if let Some(report) = std::env::var_os(REPORT_ENV) {
        let server = PostgresServer::get();
        std::fs::write(
            report,
            format!("{}\n{}\n", server.port(), server.dir().display()),
        )
        .expect("write report");
    }
}

#[test]
fn server_stops_when_the_test_process_exits() {
    let scratch = support::temp_dir();
    let report = scratch.path().join("report");
    let status = Command::new(std::env::current_exe().expect("find this test binary"))
        .args(["--exact", "child_reports_its_server", "--test-threads=1"])
        .env(REPORT_ENV, &report)
        // Keep the child's server log apart from ours.
        .env(
            "ALIS_TEST_PG_LOG",
            scratch.path().join("child-postgres.log"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .status()
        .expect("run this test binary as a child");
    assert!(status.success(), "child test run failed: {status}");

    let report = std::fs::read_to_string(&report).expect("child wrote its report");
    let mut lines = report.lines();
    let port: u16 = lines
        .next()
        .and_then(|l| l.parse().ok())
        .expect("port in report");
    let dir = PathBuf::from(lines.next().expect("directory in report"));

    // The child has exited: its server must shut down and its directory go.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let gone = !dir.exists() && TcpStream::connect(("127.0.0.1", port)).is_err();
        if gone {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "child's server (port {port}, {}) still there 30 s after the child exited",
            dir.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
