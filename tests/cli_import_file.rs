//! The `alis-import` binary as an operator runs it: `sample`, `migrate` and
//! `import-file` with their exit statuses and the JSON summary's stable keys.

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::Backend;

fn alis_import(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_alis-import"))
        .args(args)
        .env_remove("DATABASE_URL")
        .output()
        .expect("run alis-import")
}

fn sample_into(url: &str, dir: &Path) -> String {
    let out = alis_import(&[
        "sample",
        "--database-url",
        url,
        "--out-dir",
        dir.to_str().expect("utf-8 path"),
        "--employees",
        "60",
        "--statewide-educators",
        "600",
        "--as-of",
        "2026-11-30",
    ]);
    assert!(
        out.status.success(),
        "sample failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

#[tokio::test]
async fn import_file_applies_then_reports_json_with_the_stable_keys() {
    for backend in Backend::ALL {
        let (url, _guard) = backend.fresh_database_url().await;
        let dir = support::temp_dir();
        let path = sample_into(&url, dir.path());
        let out = alis_import(&[
            "import-file",
            &path,
            "--database-url",
            &url,
            "--as-of",
            "2026-11-30",
            "--json",
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{backend}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let json = json_of(&out);
        for key in [
            "run_date",
            "dry_run",
            "rejected",
            "file",
            "data_rows",
            "invalid_rows",
            "not_imported_by_status",
            "educators_not_employed",
            "missing_certification",
            "expired_certifications",
            "missing_dates",
            "deleted",
            "imported",
            "skipped",
            "expiring_soon",
        ] {
            assert!(json.get(key).is_some(), "{backend}: key {key} missing");
        }
        assert_eq!(json["run_date"], "2026-11-30");
        assert_eq!(json["rejected"], serde_json::Value::Null);
        assert_eq!(json["file"]["name"], "Curr_Lic_Eds_End_Limits_20261130.csv");
        // Hashed alongside the import, from a second handle to the open file.
        let bytes = std::fs::read(&path).unwrap();
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
        assert_eq!(json["file"]["sha256"].as_str(), Some(sha256.as_str()));
        assert!(
            json["imported"]["certifications"]
                .as_u64()
                .is_some_and(|n| n > 0)
        );
        for key in [
            "certification_issue",
            "certification_expiration",
            "endorsement_issue",
            "endorsement_expiration",
        ] {
            assert!(
                json["missing_dates"][key].is_u64(),
                "{backend}: missing_dates.{key}"
            );
        }
    }
}

#[tokio::test]
async fn dry_run_exits_zero_and_a_rejected_file_exits_two() {
    let (url, _guard) = Backend::Sqlite.fresh_database_url().await;
    let dir = support::temp_dir();
    let path = sample_into(&url, dir.path());

    let dry = alis_import(&[
        "import-file",
        &path,
        "--database-url",
        &url,
        "--dry-run",
        "--json",
    ]);
    assert_eq!(dry.status.code(), Some(0));
    assert_eq!(json_of(&dry)["dry_run"], true);

    let broken = dir.path().join("Curr_Lic_Eds_End_Limits_20261201.csv");
    std::fs::write(&broken, "EducatorID,LastName\n1,A\n").expect("write broken file");
    let rejected = alis_import(&[
        "import-file",
        broken.to_str().expect("utf-8"),
        "--database-url",
        &url,
        "--json",
    ]);
    assert_eq!(rejected.status.code(), Some(2));
    let reason = json_of(&rejected)["rejected"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(reason.contains("FirstName"), "{reason}");

    let pdf_path = dir.path().join("report.pdf");
    let with_pdf = alis_import(&[
        "import-file",
        &path,
        "--database-url",
        &url,
        "--pdf",
        pdf_path.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        with_pdf.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&with_pdf.stderr)
    );
    let text = support::pdf_text(&std::fs::read(&pdf_path).expect("pdf written"));
    assert!(text.contains("Import Summary"), "{text}");

    let human = alis_import(&["import-file", &path, "--database-url", &url]);
    assert_eq!(human.status.code(), Some(0));
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(text.contains("records imported:"), "{text}");
}

#[tokio::test]
async fn missing_file_fails_with_a_clear_message() {
    let (url, _guard) = Backend::Sqlite.fresh_database_url().await;
    let out = alis_import(&[
        "import-file",
        "/nonexistent/Curr_Lic_Eds_End_Limits_20261130.csv",
        "--database-url",
        &url,
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot open /nonexistent/"), "{stderr}");
}

#[test]
fn migrate_creates_a_sqlite_file_and_is_idempotent() {
    let dir = support::temp_dir();
    let url = format!("sqlite://{}/sub/db.sqlite?mode=rwc", dir.path().display());
    for _ in 0..2 {
        let out = alis_import(&["migrate", "--database-url", &url]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(dir.path().join("sub/db.sqlite").exists());
}
