//! A synthetic district and statewide ALiS file, for the demo, the tests and the
//! benchmarks.
//!
//! Everything is derived from a seed and an index, so a statewide file of any size is
//! written row by row without holding it in memory, and the same spec always gives
//! the same district and file. The district is built from educators of the file with
//! the imperfections real data has: names spelled differently, State Staff IDs
//! missing, padded with zeros or duplicated, staff the file does not know, terminated
//! employees, and job classes that do not need a licence.

use std::io::Write;

use jiff::ToSpan;
use jiff::civil::Date;

/// The size and shape of a sample.
#[derive(Debug, Clone)]
pub struct SampleSpec {
    /// Seed of every random choice.
    pub seed: u64,
    /// Educators in the statewide file.
    pub statewide_educators: usize,
    /// Employees of the district (active and terminated).
    pub employees: usize,
    /// The date the data is "as of": licences expire around it.
    pub as_of: Date,
}

impl Default for SampleSpec {
    fn default() -> Self {
        Self {
            seed: 7,
            statewide_educators: 2_000,
            employees: 120,
            as_of: jiff::civil::date(2026, 11, 30),
        }
    }
}

/// A job class of the sample district.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleJobClass {
    /// `job_classes.id`.
    pub id: i64,
    /// Short code.
    pub code: &'static str,
    /// Description.
    pub description: &'static str,
    /// Whether holders need a licence.
    pub certification_required: bool,
}

/// An employee of the sample district.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SampleEmployee {
    /// `employees.id`.
    pub id: i64,
    /// `employees.employee_number`.
    pub employee_number: String,
    /// `employees.state_staff_id`.
    pub state_staff_id: Option<String>,
    /// Last name.
    pub last_name: String,
    /// First name.
    pub first_name: String,
    /// `ACTIVE` or `TERMINATED`.
    pub status: &'static str,
    /// `job_classes.id`.
    pub job_class_id: i64,
}

/// The sample district's tables.
#[derive(Debug, Clone, Default)]
pub struct SampleDistrict {
    /// Job classes.
    pub job_classes: Vec<SampleJobClass>,
    /// Employees.
    pub employees: Vec<SampleEmployee>,
}

const JOB_CLASSES: [(&str, &str, bool); 5] = [
    ("TCH", "Teacher", true),
    ("SPED", "Special Educator", true),
    ("ADM", "Principal / Administrator", true),
    ("PARA", "Paraeducator", false),
    ("CUST", "Custodian", false),
];

const LAST_NAMES: [&str; 24] = [
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Jones",
    "Miller",
    "Davis",
    "Garcia",
    "Rodriguez",
    "Wilson",
    "Martinez",
    "Anderson",
    "Taylor",
    "Thomas",
    "O'Brien",
    "Nguyễn",
    "Larsen",
    "Dubois",
    "Kowalski",
    "Bouchard",
    "McAllister",
    "St. Pierre",
    "Van der Berg",
    "Østergaard",
];

const FIRST_NAMES: [&str; 24] = [
    "Mary",
    "John",
    "Patricia",
    "Robert",
    "Jennifer",
    "Michael",
    "Linda",
    "William",
    "Elizabeth",
    "David",
    "Barbara",
    "Richard",
    "Susan",
    "Joseph",
    "Jessica",
    "Thomas",
    "Sarah",
    "Søren",
    "Zoë",
    "José",
    "Anne Marie",
    "Mei",
    "Aoife",
    "Łucja",
];

const LICENCE_TYPES: [&str; 5] = [
    "Level I Professional Educator",
    "Level II Professional Educator",
    "Provisional",
    "Emergency",
    "Apprenticeship",
];

/// (code, description, grade level) of Vermont-style endorsements.
const ENDORSEMENTS: [(&str, &str, &str); 14] = [
    ("1-01", "Early Childhood Educator", "Birth-3"),
    ("2-01", "Elementary Education", "K-6"),
    ("2-05", "English", "7-12"),
    ("2-06", "Mathematics", "7-12"),
    ("2-07", "Middle Grades Mathematics", "5-9"),
    ("2-08", "Science", "7-12"),
    ("2-09", "Social Studies", "7-12"),
    ("2-12", "World Languages: French", "PK-12"),
    ("2-14", "Art", "PK-12"),
    ("2-15", "Music", "PK-12"),
    ("2-18", "Physical Education", "PK-12"),
    ("3-61", "School Counselor", "PK-12"),
    ("3-82", "Special Educator", "PK-12"),
    ("3-86", "Principal", "PK-12"),
];

const LIMITS: [&str; 4] = [
    "Limited to current assignment",
    "Must pass Praxis II by end of licence term",
    "Grades 5-8 only",
    "Valid only in a supervised setting",
];

/// The file's header, in ALiS order.
pub const HEADER: [&str; 14] = [
    "EducatorID",
    "LastName",
    "FirstName",
    "LicenseNumber",
    "LicenseType",
    "LicenseStatus",
    "LicenseIssueDate",
    "LicenseExpirationDate",
    "EndorsementCode",
    "EndorsementDescription",
    "EndorsementLevel",
    "EndorsementIssueDate",
    "EndorsementExpirationDate",
    "Limits",
];

/// One endorsement of a sample licence.
#[derive(Debug, Clone)]
struct SampleEndorsement {
    code: &'static str,
    description: &'static str,
    level: &'static str,
    issue: Option<Date>,
    expiration: Option<Date>,
    limits: Vec<&'static str>,
}

/// One licence of a sample educator.
#[derive(Debug, Clone)]
struct SampleLicence {
    number: Option<String>,
    kind: &'static str,
    status: &'static str,
    issue: Option<Date>,
    expiration: Option<Date>,
    endorsements: Vec<SampleEndorsement>,
}

/// A statewide educator, derived from (seed, index) alone.
#[derive(Debug, Clone)]
struct SampleEducator {
    id: u64,
    last_name: &'static str,
    first_name: &'static str,
    licences: Vec<SampleLicence>,
}

fn rng_for(seed: u64, stream: u64, index: u64) -> fastrand::Rng {
    fastrand::Rng::with_seed(
        seed ^ stream.rotate_left(32) ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    )
}

fn pick<T: Copy>(rng: &mut fastrand::Rng, items: &[T]) -> T {
    items[rng.usize(..items.len())]
}

fn educator(spec: &SampleSpec, index: usize) -> SampleEducator {
    let mut rng = rng_for(spec.seed, 1, index as u64);
    let licence_count = 1 + usize::from(rng.u8(..10) < 3) + usize::from(rng.u8(..10) < 1);
    let licences = (0..licence_count)
        .map(|l| {
            let status = match rng.u8(..100) {
                0..=74 => "ACT",
                75..=84 => "EXP",
                85..=92 => "UDR",
                93..=96 => "PND",
                97..=98 => "SUS",
                _ => "REV",
            };
            let issue = spec.as_of.saturating_sub((rng.i64(30..3_000)).days());
            let expiration = match rng.u8(..100) {
                0..=4 => None,
                5..=9 => Some(spec.as_of.saturating_add(rng.i64(0..90).days())),
                10..=14 => Some(spec.as_of.saturating_sub(rng.i64(1..400).days())),
                _ => Some(spec.as_of.saturating_add(rng.i64(91..2_000).days())),
            };
            let endorsement_count = 1 + rng.usize(..3);
            let mut codes: Vec<_> = (0..endorsement_count)
                .map(|_| pick(&mut rng, &ENDORSEMENTS))
                .collect();
            codes.dedup();
            SampleLicence {
                number: (rng.u8(..20) != 0).then(|| format!("{}-{}", 100_000 + index, l + 1)),
                kind: pick(&mut rng, &LICENCE_TYPES),
                status,
                issue: (rng.u8(..50) != 0).then_some(issue),
                expiration,
                endorsements: codes
                    .into_iter()
                    .map(|(code, description, level)| SampleEndorsement {
                        code,
                        description,
                        level,
                        issue: (rng.u8(..20) != 0).then_some(issue),
                        expiration: if rng.u8(..10) == 0 {
                            Some(spec.as_of.saturating_add(rng.i64(0..90).days()))
                        } else {
                            expiration
                        },
                        limits: (0..rng.usize(..3).saturating_sub(1))
                            .map(|_| pick(&mut rng, &LIMITS))
                            .collect(),
                    })
                    .collect(),
            }
        })
        .collect();
    SampleEducator {
        id: 1_000_000 + index as u64 * 7,
        last_name: pick(&mut rng, &LAST_NAMES),
        first_name: pick(&mut rng, &FIRST_NAMES),
        licences,
    }
}

/// Educators of the file that the district employs: every `stride`-th one.
fn stride(spec: &SampleSpec) -> usize {
    (spec.statewide_educators / spec.employees.max(1)).max(1)
}

/// The district's job classes and employees.
pub fn district(spec: &SampleSpec) -> SampleDistrict {
    let job_classes = JOB_CLASSES
        .iter()
        .enumerate()
        .map(
            |(i, &(code, description, certification_required))| SampleJobClass {
                id: i as i64 + 1,
                code,
                description,
                certification_required,
            },
        )
        .collect();
    let stride = stride(spec);
    let employees = (0..spec.employees)
        .map(|j| {
            let mut rng = rng_for(spec.seed, 2, j as u64);
            let id = j as i64 + 1;
            let file_index = j * stride;
            let in_file = file_index < spec.statewide_educators;
            let educator = educator(spec, file_index);
            let mut last = educator.last_name.to_owned();
            let mut first = educator.first_name.to_owned();
            let mut staff_id = Some(educator.id.to_string());
            let roll = rng.u8(..100);
            let mut job_class_id = match rng.u8(..10) {
                0..=5 => 1,
                6 => 2,
                7 => 3,
                8 => 4,
                _ => 5,
            };
            match roll {
                // Spelled differently in the ERP.
                0..=1 => last = last.to_uppercase().replace('\'', ""),
                // No State Staff ID recorded.
                2 => staff_id = None,
                // Padded with zeros.
                3..=5 => staff_id = staff_id.map(|s| format!("00{s}")),
                // Someone the file does not know.
                6..=8 => {
                    staff_id = Some(format!("{}", 9_000_000 + j));
                    last = format!("Newhire{j}");
                    job_class_id = 1;
                }
                _ => {}
            }
            if !in_file {
                staff_id = None;
                last = format!("Staff{j}");
            }
            SampleEmployee {
                id,
                employee_number: format!("E{id:05}"),
                state_staff_id: staff_id,
                last_name: last,
                first_name: first.split_off(0),
                status: if rng.u8(..100) < 5 {
                    "TERMINATED"
                } else {
                    "ACTIVE"
                },
                job_class_id,
            }
        })
        .collect();
    SampleDistrict {
        job_classes,
        employees,
    }
}

fn us_date(date: Option<Date>) -> String {
    date.map(|d| d.strftime("%m/%d/%Y").to_string())
        .unwrap_or_default()
}

/// Writes the statewide file as CSV; returns the number of data rows written.
pub fn write_statewide_file(spec: &SampleSpec, out: impl Write) -> csv::Result<u64> {
    let mut writer = csv::Writer::from_writer(out);
    writer.write_record(HEADER)?;
    let mut rows = 0;
    for index in 0..spec.statewide_educators {
        let educator = educator(spec, index);
        let id = educator.id.to_string();
        for licence in &educator.licences {
            let number = licence.number.clone().unwrap_or_default();
            let (issue, expiration) = (us_date(licence.issue), us_date(licence.expiration));
            let licence_columns = [
                id.as_str(),
                educator.last_name,
                educator.first_name,
                &number,
                licence.kind,
                licence.status,
                &issue,
                &expiration,
            ];
            for endorsement in &licence.endorsements {
                let limit_rows: Vec<&str> = if endorsement.limits.is_empty() {
                    vec![""]
                } else {
                    endorsement.limits.clone()
                };
                for limit in limit_rows {
                    let (e_issue, e_expiration) =
                        (us_date(endorsement.issue), us_date(endorsement.expiration));
                    let endorsement_columns = [
                        endorsement.code,
                        endorsement.description,
                        endorsement.level,
                        &e_issue,
                        &e_expiration,
                        limit,
                    ];
                    writer
                        .write_record(licence_columns.iter().chain(endorsement_columns.iter()))?;
                    rows += 1;
                }
            }
        }
    }
    writer.flush()?;
    Ok(rows)
}

/// The name the sample file gets in an inbox: a recognised ALiS file name.
pub fn file_name(spec: &SampleSpec) -> String {
    format!(
        "Curr_Lic_Eds_End_Limits_{}.csv",
        spec.as_of.strftime("%Y%m%d")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_spec_gives_the_same_file() {
        let spec = SampleSpec {
            statewide_educators: 50,
            employees: 10,
            ..SampleSpec::default()
        };
        let (mut a, mut b) = (Vec::new(), Vec::new());
        write_statewide_file(&spec, &mut a).expect("write");
        write_statewide_file(&spec, &mut b).expect("write");
        assert_eq!(a, b);
        assert!(a.starts_with(b"EducatorID,LastName,FirstName,LicenseNumber"));
    }

    #[test]
    fn district_has_active_and_terminated_staff_and_every_job_class_kind() {
        let spec = SampleSpec {
            statewide_educators: 5_000,
            employees: 400,
            ..SampleSpec::default()
        };
        let district = district(&spec);
        assert_eq!(district.employees.len(), 400);
        assert!(district.employees.iter().any(|e| e.status == "TERMINATED"));
        assert!(
            district
                .employees
                .iter()
                .any(|e| e.state_staff_id.is_none())
        );
        assert!(district.employees.iter().any(|e| {
            e.state_staff_id
                .as_deref()
                .is_some_and(|s| s.starts_with("00"))
        }));
        assert!(
            district
                .job_classes
                .iter()
                .any(|j| !j.certification_required)
        );
    }
}
