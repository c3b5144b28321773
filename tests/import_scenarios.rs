//! Import scenarios, run against both store backends: what the tables hold after an
//! import (rules §2–§3), and that every refusal and failure leaves them as they were.

mod common;
mod support;

use common::{ImportOptions, JOB_CLASSES, TestStore, employee_sql, file, manual_certification_sql};
use support::Backend;

on_both_backends!(
    matched_employee_gets_exactly_the_files_records,
    replace_removes_every_record_of_every_active_employee,
    terminated_employees_keep_their_certifications,
    skipped_employees_lose_their_records_and_are_reported,
    only_active_and_under_review_licences_are_imported,
    new_endorsement_codes_are_added_and_known_ones_kept,
    primary_endorsement_survives_the_replace,
    dry_run_writes_nothing_and_reports_what_it_would_do,
    file_rejections_leave_every_table_as_it_was,
    mass_deletion_guard_refuses_and_force_passes,
    failure_in_the_middle_of_the_replace_rolls_everything_back,
    importing_the_same_file_twice_gives_the_same_records,
    summary_lists_missing_expired_and_expiring_records,
    text_is_stored_exactly_as_read,
);

/// Ann Smith (1001) teaches, Bo Jones (1002) teaches, Cy Lee (1003) was terminated,
/// Di Kerr (no staff id) is a custodian.
async fn district(backend: Backend) -> TestStore {
    let db = TestStore::new(backend).await;
    db.execute(JOB_CLASSES).await;
    db.execute(&employee_sql(1, Some("1001"), "Smith", "Ann", "ACTIVE", 1))
        .await;
    db.execute(&employee_sql(2, Some("1002"), "Jones", "Bo", "ACTIVE", 1))
        .await;
    db.execute(&employee_sql(3, Some("1003"), "Lee", "Cy", "TERMINATED", 1))
        .await;
    db.execute(&employee_sql(4, None, "Kerr", "Di", "ACTIVE", 2))
        .await;
    db
}

const ANN: &[&str] = &[
    "1001,Smith,Ann,L-1,Level II Professional Educator,ACT,07/01/2020,06/30/2027,2-05,English,7-12,07/01/2020,06/30/2027,Limited to current assignment",
    "1001,Smith,Ann,L-1,Level II Professional Educator,ACT,07/01/2020,06/30/2027,2-05,English,7-12,07/01/2020,06/30/2027,Grades 5-8 only",
    "1001,Smith,Ann,L-1,Level II Professional Educator,ACT,07/01/2020,06/30/2027,3-82,Special Educator,PK-12,2021-09-01,,",
];
const BO: &str = "1002,Jones,Bo,L-2,Provisional,UDR,09/01/2025,08/31/2027,2-01,Elementary Education,K-6,09/01/2025,08/31/2027,";
const STRANGER: &str =
    "9999,Stranger,Sam,L-9,Provisional,ACT,09/01/2025,08/31/2027,2-01,Elementary Education,K-6,,,";

fn standard_file() -> String {
    let mut lines = ANN.to_vec();
    lines.extend([BO, STRANGER]);
    file(&lines)
}

async fn matched_employee_gets_exactly_the_files_records(backend: Backend) {
    let db = district(backend).await;
    let summary = db.import(&standard_file(), ImportOptions::default()).await;

    assert_eq!(summary.rejected, None);
    assert_eq!(
        db.certifications_of("E00001").await,
        vec!["L-1|Level II Professional Educator|ACT|2020-07-01|2027-06-30|ALIS"]
    );
    assert_eq!(
        db.endorsements_of("E00001").await,
        vec![
            "L-1|2-05|7-12|English|2020-07-01|2027-06-30|Limited to current assignment; Grades 5-8 only|-",
            "L-1|3-82|PK-12|Special Educator|2021-09-01|∅|∅|-",
        ]
    );
    let run_ids = db
        .rows("select distinct cast(import_run_id as text) from certifications union select distinct cast(import_run_id as text) from endorsements")
        .await;
    assert_eq!(
        run_ids,
        vec!["1"],
        "every written record carries the run that wrote it"
    );
    assert_eq!(summary.imported.certifications, 2);
    assert_eq!(summary.imported.endorsements, 3);
    assert_eq!(summary.educators_not_employed, 1);
    assert_eq!(summary.data_rows, 5);
}

async fn replace_removes_every_record_of_every_active_employee(backend: Backend) {
    let db = district(backend).await;
    db.execute(&manual_certification_sql(100, 1, "OLD-1", "9-99"))
        .await;
    db.execute(&manual_certification_sql(101, 4, "OLD-4", "9-98"))
        .await;
    let summary = db.import(&standard_file(), ImportOptions::default()).await;

    assert_eq!(summary.deleted.certifications, 2);
    assert_eq!(summary.deleted.endorsements, 2);
    assert_eq!(summary.deleted.total, 4);
    assert!(
        db.rows("select 1 from certifications where license_number like 'OLD-%'")
            .await
            .is_empty()
    );
    assert!(
        db.certifications_of("E00004").await.is_empty(),
        "unmatched active employee lost their records"
    );
}

async fn terminated_employees_keep_their_certifications(backend: Backend) {
    let db = district(backend).await;
    db.execute(&manual_certification_sql(200, 3, "KEEP-3", "2-05"))
        .await;
    let before = db.endorsements_of("E00003").await;
    let lines =
        ["1003,Lee,Cy,L-3,Provisional,ACT,09/01/2025,08/31/2027,2-01,Elementary Education,K-6,,,"];
    let summary = db.import(&file(&lines), ImportOptions::forced()).await;

    assert_eq!(summary.rejected, None);
    assert_eq!(
        db.certifications_of("E00003").await,
        vec!["KEEP-3|Provisional|ACT|2020-01-01|2030-06-30|MANUAL"]
    );
    assert_eq!(db.endorsements_of("E00003").await, before);
    assert!(summary.skipped.is_empty());
    assert_eq!(
        summary.educators_not_employed, 1,
        "a terminated employee is not employed here"
    );
}

async fn skipped_employees_lose_their_records_and_are_reported(backend: Backend) {
    let db = district(backend).await;
    db.execute(&manual_certification_sql(300, 2, "OLD-2", "2-01"))
        .await;
    let lines = [
        "1002,Jonas,Bo,L-2,Provisional,ACT,09/01/2025,08/31/2027,2-01,Elementary Education,K-6,,,",
        "5555,Kerr,Di,L-5,Provisional,ACT,09/01/2025,08/31/2027,2-01,Elementary Education,K-6,,,",
    ];
    let summary = db.import(&file(&lines), ImportOptions::forced()).await;

    assert!(db.certifications_of("E00002").await.is_empty());
    assert!(db.certifications_of("E00004").await.is_empty());
    let skipped: Vec<_> = summary
        .skipped
        .iter()
        .map(|s| {
            (
                s.employee_number.as_str(),
                s.reasons.join(","),
                s.detail.as_str(),
            )
        })
        .collect();
    assert_eq!(
        skipped,
        vec![
            (
                "E00002",
                "last_name".to_owned(),
                "last name: ERP: Jones, ALiS: Jonas"
            ),
            (
                "E00004",
                "educator_id".to_owned(),
                "Educator ID mismatch: ERP: (none), ALiS: 5555"
            ),
        ]
    );
}

async fn only_active_and_under_review_licences_are_imported(backend: Backend) {
    let db = district(backend).await;
    let lines = [
        "1001,Smith,Ann,L-A,Provisional,act,09/01/2025,08/31/2027,2-01,Elementary Education,K-6,,,",
        "1001,Smith,Ann,L-B,Provisional, UDR ,09/01/2025,08/31/2027,2-01,Elementary Education,K-6,,,",
        "1001,Smith,Ann,L-C,Provisional,EXP,09/01/2015,08/31/2020,2-01,Elementary Education,K-6,,,",
        "1001,Smith,Ann,L-D,Provisional,SUS,09/01/2015,08/31/2028,2-01,Elementary Education,K-6,,,",
        BO,
    ];
    let summary = db.import(&file(&lines), ImportOptions::default()).await;

    let numbers: Vec<String> = db
        .certifications_of("E00001")
        .await
        .into_iter()
        .map(|r| r.split('|').take(3).collect::<Vec<_>>().join("|"))
        .collect();
    assert_eq!(numbers, vec!["L-A|Provisional|ACT", "L-B|Provisional|UDR"]);
    assert_eq!(summary.not_imported_by_status.get("EXP"), Some(&1));
    assert_eq!(summary.not_imported_by_status.get("SUS"), Some(&1));
}

async fn new_endorsement_codes_are_added_and_known_ones_kept(backend: Backend) {
    let db = district(backend).await;
    db.execute("insert into endorsement_codes (code, description) values ('2-05', 'English (ERP wording)')")
        .await;
    db.import(&standard_file(), ImportOptions::default()).await;

    assert_eq!(
        db.rows("select code, description from endorsement_codes order by code")
            .await,
        vec![
            "2-01|Elementary Education",
            "2-05|English (ERP wording)",
            "3-82|Special Educator"
        ]
    );
}

async fn primary_endorsement_survives_the_replace(backend: Backend) {
    let db = district(backend).await;
    // Ann's primary endorsement in the ERP is 3-82 PK-12.
    db.execute(
        "insert into certifications (id, employee_id, license_number, license_type, status, source) \
         values (400, 1, 'L-1', 'Level II Professional Educator', 'ACT', 'ALIS'); \
         insert into endorsements (certification_id, employee_id, code, grade_level, is_primary, source) \
         values (400, 1, '3-82', 'PK-12', true, 'ALIS'), (400, 1, '2-05', '7-12', false, 'ALIS');",
    )
    .await;
    db.import(&standard_file(), ImportOptions::default()).await;

    let flags: Vec<String> = db
        .endorsements_of("E00001")
        .await
        .into_iter()
        .map(|r| {
            let columns: Vec<_> = r.split('|').collect();
            format!("{}:{}", columns[1], columns[7])
        })
        .collect();
    assert_eq!(flags, vec!["2-05:-", "3-82:primary"]);
}

async fn dry_run_writes_nothing_and_reports_what_it_would_do(backend: Backend) {
    let db = district(backend).await;
    db.execute(&manual_certification_sql(100, 1, "OLD-1", "9-99"))
        .await;
    let before = db.snapshot().await;
    let dry = db.import(&standard_file(), ImportOptions::dry_run()).await;
    assert_eq!(db.snapshot().await, before);

    let real = db.import(&standard_file(), ImportOptions::default()).await;
    assert!(dry.dry_run && !real.dry_run);
    assert_eq!(dry.deleted, real.deleted);
    assert_eq!(dry.imported, real.imported);
    assert_eq!(dry.skipped, real.skipped);
    assert_eq!(dry.missing_certification, real.missing_certification);
}

async fn file_rejections_leave_every_table_as_it_was(backend: Backend) {
    let db = district(backend).await;
    db.import(&standard_file(), ImportOptions::default()).await;
    db.execute(&manual_certification_sql(500, 4, "MAN-4", "2-18"))
        .await;
    let before = db.snapshot().await;

    let missing_column = "EducatorID,LastName,FirstName,LicenseType,LicenseIssueDate,LicenseExpirationDate,EndorsementCode\n\
        1001,Smith,Ann,Provisional,,,\n";
    let bad_dates: Vec<String> = (0..3)
        .map(|i| format!("1001,Smith,Ann,L-{i},Provisional,ACT,13/45/2020,,,,,,,"))
        .collect();
    let bad_dates: Vec<&str> = bad_dates.iter().map(String::as_str).collect();
    let cases = [
        ("missing column", missing_column.to_owned(), "LicenseStatus"),
        ("no data rows", file(&[]), "no data rows"),
        ("too many invalid rows", file(&bad_dates), "invalid"),
        ("not even a header", "\n\n".to_owned(), ""),
    ];
    for (case, csv, expected) in cases {
        let summary = db.import(&csv, ImportOptions::forced()).await;
        let reason = summary
            .rejected
            .unwrap_or_else(|| panic!("{case}: not rejected"));
        assert!(reason.contains(expected), "{case}: {reason}");
        assert_eq!(db.snapshot().await, before, "{case} changed the tables");
    }
}

async fn mass_deletion_guard_refuses_and_force_passes(backend: Backend) {
    let db = district(backend).await;
    db.import(&standard_file(), ImportOptions::default()).await;
    let before = db.snapshot().await;
    // Bo's licence is gone from the file: holders fall from 2 to 1 (50%).
    let only_ann = file(ANN);

    let refused = db.import(&only_ann, ImportOptions::default()).await;
    let reason = refused.rejected.expect("guard refuses");
    assert!(reason.starts_with("mass-deletion guard"), "{reason}");
    assert_eq!(db.snapshot().await, before);

    let forced = db.import(&only_ann, ImportOptions::forced()).await;
    assert_eq!(forced.rejected, None);
    assert!(db.certifications_of("E00002").await.is_empty());
}

async fn failure_in_the_middle_of_the_replace_rolls_everything_back(backend: Backend) {
    let db = district(backend).await;
    db.import(&standard_file(), ImportOptions::default()).await;
    let before = db.snapshot().await;
    // A trigger fails the insert of one endorsement: the deletes and the certification
    // inserts before it have already run inside the transaction.
    match backend {
        Backend::Postgres => {
            db.execute(
                "create function boom() returns trigger language plpgsql as $$ \
                 begin if new.code = 'BOOM' then raise exception 'injected failure'; end if; \
                 return new; end $$; \
                 create trigger boom before insert on endorsements for each row execute function boom();",
            )
            .await
        }
        Backend::Sqlite => {
            db.execute(
                "create trigger boom before insert on endorsements when new.code = 'BOOM' \
                 begin select raise(abort, 'injected failure'); end;",
            )
            .await
        }
    }
    let mut lines = ANN.to_vec();
    lines.push(BO);
    lines.push("1002,Jones,Bo,L-2,Provisional,UDR,09/01/2025,08/31/2027,BOOM,Boom,K-6,,,");
    let result = db.try_import(&file(&lines), ImportOptions::default()).await;

    assert!(result.is_err(), "the injected failure surfaces as an error");
    assert_eq!(db.snapshot().await, before);
}

async fn importing_the_same_file_twice_gives_the_same_records(backend: Backend) {
    let db = district(backend).await;
    db.import(&standard_file(), ImportOptions::default()).await;
    let first = (
        db.certifications_of("E00001").await,
        db.endorsements_of("E00001").await,
    );
    let second_summary = db.import(&standard_file(), ImportOptions::default()).await;
    let second = (
        db.certifications_of("E00001").await,
        db.endorsements_of("E00001").await,
    );

    assert_eq!(first, second);
    assert_eq!(second_summary.deleted, second_summary.imported);
}

async fn summary_lists_missing_expired_and_expiring_records(backend: Backend) {
    let db = district(backend).await;
    db.execute(&employee_sql(5, Some("1005"), "Ng", "Mei", "ACTIVE", 1))
        .await;
    let lines = [
        // Ann: expired yesterday (run date 2026-11-30).
        "1001,Smith,Ann,L-1,Provisional,ACT,07/01/2020,11/29/2026,2-05,English,7-12,,,",
        // Bo: expires on the run date (still valid) and within 90 days.
        "1002,Jones,Bo,L-2,Provisional,ACT,,11/30/2026,2-01,Elementary Education,K-6,09/01/2025,,",
        // Mei: only an expired-status licence, so she ends with none.
        "1005,Ng,Mei,L-5,Provisional,EXP,07/01/2010,06/30/2015,2-01,Elementary Education,K-6,,,",
    ];
    let summary = db.import(&file(&lines), ImportOptions::forced()).await;

    let expired: Vec<_> = summary
        .expired_certifications
        .iter()
        .map(|e| (e.employee_number.as_str(), e.expiration_date.to_string()))
        .collect();
    assert_eq!(expired, vec![("E00001", "2026-11-29".to_owned())]);
    let expiring: Vec<_> = summary
        .expiring_soon
        .iter()
        .map(|e| e.employee_number.as_str())
        .collect();
    assert_eq!(expiring, vec!["E00002"]);
    let missing: Vec<_> = summary
        .missing_certification
        .iter()
        .map(|e| e.employee_number.as_str())
        .collect();
    assert_eq!(
        missing,
        vec!["E00005"],
        "the custodian needs none; Mei holds none"
    );
    assert_eq!(summary.missing_dates.certification_issue, 1);
    assert_eq!(summary.missing_dates.certification_expiration, 0);
    assert_eq!(summary.missing_dates.endorsement_issue, 1);
    assert_eq!(summary.missing_dates.endorsement_expiration, 2);
}

/// Backslashes, tabs and `\N` reach the tables as written: PostgreSQL takes the rows
/// through COPY's text format, where each of them means something.
async fn text_is_stored_exactly_as_read(backend: Backend) {
    let db = district(backend).await;
    let line = "1001,Smith,Ann,L\\1,Level II\tProfessional,ACT,07/01/2020,06/30/2027,\
                2-05,\"Art \\ Design\tTheory\",7-12,07/01/2020,06/30/2027,\\N";
    let summary = db.import(&file(&[line]), ImportOptions::default()).await;

    assert_eq!(summary.rejected, None);
    assert_eq!(
        db.certifications_of("E00001").await,
        vec!["L\\1|Level II\tProfessional|ACT|2020-07-01|2027-06-30|ALIS"]
    );
    assert_eq!(
        db.endorsements_of("E00001").await,
        vec!["L\\1|2-05|7-12|Art \\ Design\tTheory|2020-07-01|2027-06-30|\\N|-"]
    );
}
