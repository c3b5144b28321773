//! Property: for generated districts and statewide files, after a successful import
//! every active employee's records are exactly what the file says for them (computed
//! here by a naive, independent reading of the file), and terminated employees'
//! records are untouched. Runs against both backends.

mod common;
mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use alis_import::sample::{self, SampleSpec};
use common::{ImportOptions, TestStore};
use support::Backend;

on_both_backends!(every_active_employee_holds_exactly_what_the_file_says);

/// Seeds and sizes tried on each backend.
const CASES: [(u64, usize, usize); 5] = [
    (1, 300, 40),
    (2, 1_000, 120),
    (3, 150, 150),
    (4, 2_000, 60),
    (5, 500, 500),
];

async fn every_active_employee_holds_exactly_what_the_file_says(backend: Backend) {
    for (seed, statewide_educators, employees) in CASES {
        let spec = SampleSpec {
            seed,
            statewide_educators,
            employees,
            as_of: jiff::civil::date(2026, 11, 30),
        };
        let db = TestStore::new(backend).await;
        let district = sample::district(&spec);
        db.store
            .insert_district(&district)
            .await
            .expect("insert district");
        // Everyone holds a manual licence before the import.
        for employee in &district.employees {
            db.execute(&common::manual_certification_sql(
                10_000 + employee.id,
                employee.id,
                &format!("MAN-{}", employee.id),
                "9-99",
            ))
            .await;
        }
        let terminated_before = terminated_records(&db).await;
        let mut csv = Vec::new();
        sample::write_statewide_file(&spec, &mut csv).expect("write file");
        let csv = String::from_utf8(csv).expect("sample files are UTF-8");

        let summary = db.import(&csv, ImportOptions::forced()).await;
        assert_eq!(summary.rejected, None, "seed {seed}");

        let expected = expected_records(&district, &csv);
        let active = district
            .employees
            .iter()
            .filter(|e| e.status == "ACTIVE")
            .count();
        assert!(
            expected.len() * 10 >= active * 7,
            "seed {seed}: most employees are matched"
        );
        let expected_certifications = expected
            .values()
            .flatten()
            .filter(|r| !r.starts_with("endorsement "))
            .count() as u64;
        assert_eq!(
            summary.imported.certifications, expected_certifications,
            "seed {seed}"
        );
        for employee in district.employees.iter().filter(|e| e.status == "ACTIVE") {
            let number = &employee.employee_number;
            let actual: BTreeSet<String> = db
                .certifications_of(number)
                .await
                .into_iter()
                .chain(db.endorsements_of(number).await.into_iter().map(|e| {
                    // Drop the primary flag: the property is about the file's content.
                    let mut columns: Vec<&str> = e.split('|').collect();
                    columns.pop();
                    format!("endorsement {}", columns.join("|"))
                }))
                .collect();
            let wanted = expected.get(number).cloned().unwrap_or_default();
            assert_eq!(actual, wanted, "seed {seed}, employee {number}");
        }
        assert_eq!(
            terminated_records(&db).await,
            terminated_before,
            "seed {seed}"
        );
    }
}

async fn terminated_records(db: &TestStore) -> Vec<String> {
    db.rows(
        "select cast(c.id as text), c.license_number, c.source, n.code from certifications c \
         join employees e on e.id = c.employee_id left join endorsements n on n.certification_id = c.id \
         where e.status = 'TERMINATED' order by c.id, n.id",
    )
    .await
}

/// The file read naively: rows grouped by educator, licence and endorsement.
#[derive(Default)]
struct Licence {
    columns: String,
    endorsements: BTreeMap<(String, String), (String, Vec<String>)>,
}

fn iso(us: &str) -> String {
    if us.is_empty() {
        return "∅".into();
    }
    let parts: Vec<&str> = us.split('/').collect();
    format!("{}-{:0>2}-{:0>2}", parts[2], parts[0], parts[1])
}

fn opt(value: &str) -> String {
    if value.is_empty() {
        "∅".into()
    } else {
        value.into()
    }
}

fn normalise_id(id: &str) -> String {
    let trimmed = id.trim();
    if trimmed.chars().all(|c| c.is_ascii_digit()) {
        let digits = trimmed.trim_start_matches('0');
        if digits.is_empty() {
            "0".into()
        } else {
            digits.into()
        }
    } else {
        trimmed.into()
    }
}

fn normalise_name(name: &str) -> String {
    name.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase()
}

/// What each active employee must hold after the import, in the shape the test store
/// prints: certification rows and `endorsement …` rows.
fn expected_records(
    district: &sample::SampleDistrict,
    csv: &str,
) -> HashMap<String, BTreeSet<String>> {
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    // educator id -> (last, first, licence key -> licence)
    let mut educators: HashMap<String, (String, String, BTreeMap<String, Licence>)> =
        HashMap::new();
    for record in reader.records() {
        let r = record.expect("sample rows parse");
        let f = |i: usize| r.get(i).unwrap_or("").to_owned();
        let status = f(5);
        let entry = educators
            .entry(normalise_id(&f(0)))
            .or_insert_with(|| (f(1), f(2), BTreeMap::new()));
        if !matches!(status.as_str(), "ACT" | "UDR") {
            continue;
        }
        let key = if f(3).is_empty() {
            format!("{}|{}", f(4), f(6))
        } else {
            f(3)
        };
        let licence = entry.2.entry(key).or_default();
        licence.columns = format!(
            "{}|{}|{}|{}|{}|ALIS",
            opt(&f(3)),
            f(4),
            status,
            iso(&f(6)),
            iso(&f(7))
        );
        if !f(8).is_empty() {
            let endorsement = licence
                .endorsements
                .entry((f(8), f(10)))
                .or_insert_with(|| {
                    (
                        format!(
                            "{}|{}|{}|{}|{}",
                            f(8),
                            opt(&f(10)),
                            opt(&f(9)),
                            iso(&f(11)),
                            iso(&f(12))
                        ),
                        vec![],
                    )
                });
            let limit = f(13);
            if !limit.is_empty() && !endorsement.1.contains(&limit) {
                endorsement.1.push(limit);
            }
        }
    }

    let active: Vec<_> = district
        .employees
        .iter()
        .filter(|e| e.status == "ACTIVE")
        .collect();
    let mut id_holders: HashMap<String, usize> = HashMap::new();
    for e in &active {
        if let Some(id) = &e.state_staff_id {
            *id_holders.entry(normalise_id(id)).or_default() += 1;
        }
    }
    let mut expected = HashMap::new();
    for e in active {
        let Some(id) = e.state_staff_id.as_deref().map(normalise_id) else {
            continue;
        };
        if id_holders[&id] > 1 {
            continue;
        }
        let Some((last, first, licences)) = educators.get(&id) else {
            continue;
        };
        if normalise_name(last) != normalise_name(&e.last_name)
            || normalise_name(first) != normalise_name(&e.first_name)
        {
            continue;
        }
        let mut rows = BTreeSet::new();
        for licence in licences.values() {
            rows.insert(licence.columns.clone());
            let number = licence.columns.split('|').next().unwrap_or("").to_owned();
            for (columns, limits) in licence.endorsements.values() {
                let limits = if limits.is_empty() {
                    "∅".to_owned()
                } else {
                    limits.join("; ")
                };
                rows.insert(format!("endorsement {number}|{columns}|{limits}"));
            }
        }
        expected.insert(e.employee_number.clone(), rows);
    }
    expected
}
