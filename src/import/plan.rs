//! Matching educators in the file to the district's active employees (rules §2.1) and
//! filtering their certifications by status (rules §1.6).
//!
//! Pure: takes the active employees and the parsed file, returns a [`Plan`] that says
//! whose records are imported, who is skipped and why, and what was left out.

use std::collections::BTreeMap;

use foldhash::{HashMap, HashMapExt, HashSet};

use serde::{Deserialize, Serialize};

use super::alis_file::Keep;
use super::records::{
    ActiveEmployee, Certification, Educator, EducatorId, NameKey, ParsedFile, PersonName,
};

/// The district's active employees, indexed the two ways the file is matched against
/// them. Built before parsing so that the parser keeps only the educators who might be
/// employed here.
#[derive(Debug)]
pub struct District {
    employees: Vec<ActiveEmployee>,
    by_id: HashMap<EducatorId, Vec<usize>>,
    by_name: HashMap<(NameKey, NameKey), Vec<usize>>,
}

impl District {
    /// Indexes the active employees (terminated employees must not be passed in).
    pub fn new(employees: Vec<ActiveEmployee>) -> Self {
        let mut by_id: HashMap<EducatorId, Vec<usize>> = HashMap::new();
        let mut by_name: HashMap<(NameKey, NameKey), Vec<usize>> = HashMap::new();
        for (index, employee) in employees.iter().enumerate() {
            if let Some(id) = employee
                .state_staff_id
                .as_deref()
                .and_then(EducatorId::parse)
            {
                by_id.entry(id).or_default().push(index);
            }
            by_name
                .entry(employee_name_key(employee))
                .or_default()
                .push(index);
        }
        Self {
            employees,
            by_id,
            by_name,
        }
    }

    /// The active employees, in the order given.
    pub fn employees(&self) -> &[ActiveEmployee] {
        &self.employees
    }

    /// Whether an educator could concern this district: their ID is some active
    /// employee's State Staff ID, or their full name is some active employee's name.
    /// Everyone else is "not employed here" and only counted.
    pub fn may_employ(&self, id: &EducatorId, name: &PersonName) -> bool {
        self.keep(id, name) != Keep::Nothing
    }

    /// What the parser must keep of an educator: the records of one whose ID is some
    /// active employee's State Staff ID (only those can be imported, rules §2.1);
    /// the ID and name of one who shares only a name with an employee (reported as a
    /// skip); nothing of anyone else.
    pub fn keep(&self, id: &EducatorId, name: &PersonName) -> Keep {
        if self.by_id.contains_key(id) {
            Keep::Records
        } else if self.by_name.contains_key(&name.key()) {
            Keep::NameOnly
        } else {
            Keep::Nothing
        }
    }
}

fn employee_name_key(employee: &ActiveEmployee) -> (NameKey, NameKey) {
    PersonName::new(&employee.last_name, &employee.first_name).key()
}

/// Why an active employee's records were not imported although the file mentions them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// The names match but the IDs differ (or the ERP has none).
    EducatorId,
    /// The IDs match but the last names differ.
    LastName,
    /// The IDs match but the first names differ.
    FirstName,
    /// Another active employee has the same State Staff ID.
    DuplicateStateStaffId,
}

impl SkipReason {
    /// The stable key used in the JSON summary (rules §5).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EducatorId => "educator_id",
            Self::LastName => "last_name",
            Self::FirstName => "first_name",
            Self::DuplicateStateStaffId => "duplicate_state_staff_id",
        }
    }
}

/// An active employee whose records were not imported, with the reasons.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedEmployee {
    /// The employee.
    pub employee: ActiveEmployee,
    /// Every reason that applies, in a stable order.
    pub reasons: Vec<SkipReason>,
    /// Both values of each mismatch, for HR, e.g. `ERP: O'BRIEN, ALiS: OBrien`.
    pub detail: String,
}

/// An active employee matched to one educator, with the records to import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchedEmployee {
    /// The employee.
    pub employee: ActiveEmployee,
    /// The educator's certifications whose status is imported (`ACT`, `UDR`).
    pub certifications: Vec<Certification>,
}

/// What an import will do, before it touches the database.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Employees whose records are imported, in employee order.
    pub matched: Vec<MatchedEmployee>,
    /// Employees skipped for a mismatch, in employee order.
    pub skipped: Vec<SkippedEmployee>,
    /// Active employees who are neither matched nor skipped: their records are
    /// deleted and nothing replaces them.
    pub unmatched: Vec<ActiveEmployee>,
    /// Certification records of matched employees left out for their status, by status.
    pub not_imported_by_status: BTreeMap<String, u64>,
}

impl Plan {
    /// Certification records the replace inserts.
    pub fn certification_count(&self) -> u64 {
        self.matched
            .iter()
            .map(|m| m.certifications.len() as u64)
            .sum()
    }

    /// Endorsement records the replace inserts.
    pub fn endorsement_count(&self) -> u64 {
        self.certifications()
            .map(|(_, c)| c.endorsements.len() as u64)
            .sum()
    }

    /// Active employees who will hold at least one certification after the import.
    pub fn employees_with_certifications(&self) -> u64 {
        self.matched
            .iter()
            .filter(|m| !m.certifications.is_empty())
            .count() as u64
    }

    /// Every certification to insert, with its employee.
    pub fn certifications(&self) -> impl Iterator<Item = (&ActiveEmployee, &Certification)> {
        self.matched
            .iter()
            .flat_map(|m| m.certifications.iter().map(move |c| (&m.employee, c)))
    }
}

/// Matches the file's educators to the district's active employees (rules §2.1).
///
/// The matched educators' certifications are moved into the plan: in `parsed` they
/// are left empty.
#[tracing::instrument(
    name = "plan",
    skip_all,
    fields(
        employees = district.employees.len() as i64,
        matched = tracing::field::Empty,
        skipped = tracing::field::Empty,
        unmatched = tracing::field::Empty,
        certifications = tracing::field::Empty,
        endorsements = tracing::field::Empty
    )
)]
pub fn plan_import(district: &District, parsed: &mut ParsedFile) -> Plan {
    let mut plan = Plan::default();
    // First decide, with the file borrowed; then move the matched educators' records
    // into the plan rather than copy them: a large district's records would otherwise
    // be held twice (measured: 125 MB more at the peak for 100,000 employees).
    let matches = decide(district, parsed, &mut plan);
    let mut taken: HashMap<usize, usize> = HashMap::new();
    for (employee, educator) in matches {
        let certifications = match taken.get(&educator) {
            // Unreachable today (two employees matching one educator share an ID,
            // and duplicated IDs are skipped); cheap to keep right if that changes.
            Some(&first) => plan.matched[first].certifications.clone(),
            None => {
                taken.insert(educator, plan.matched.len());
                let records = parsed
                    .educators
                    .get_mut(educator)
                    .map(|e| std::mem::take(&mut e.certifications))
                    .unwrap_or_default();
                importable(records, &mut plan.not_imported_by_status)
            }
        };
        plan.matched.push(MatchedEmployee {
            employee: employee.clone(),
            certifications,
        });
    }
    tracing::Span::current()
        .record("matched", plan.matched.len() as i64)
        .record("skipped", plan.skipped.len() as i64)
        .record("unmatched", plan.unmatched.len() as i64)
        .record("certifications", plan.certification_count() as i64)
        .record("endorsements", plan.endorsement_count() as i64);
    plan
}

/// Matches each active employee (rules §2.1): records the skipped and unmatched in
/// `plan`, and returns the matched ones with the index of their educator in `parsed`.
fn decide<'d>(
    district: &'d District,
    parsed: &ParsedFile,
    plan: &mut Plan,
) -> Vec<(&'d ActiveEmployee, usize)> {
    let educators_by_id: HashMap<&EducatorId, usize> = parsed
        .educators
        .iter()
        .enumerate()
        .rev()
        .map(|(i, e)| (&e.id, i))
        .collect();
    let mut educators_by_name: HashMap<(NameKey, NameKey), &Educator> = HashMap::new();
    for educator in &parsed.educators {
        educators_by_name
            .entry(educator.name.key())
            .or_insert(educator);
    }
    let duplicated_ids: HashSet<&EducatorId> = district
        .by_id
        .iter()
        .filter(|(_, holders)| holders.len() > 1)
        .map(|(id, _)| id)
        .collect();

    let mut matches = Vec::new();
    for employee in &district.employees {
        let staff_id = employee
            .state_staff_id
            .as_deref()
            .and_then(EducatorId::parse);
        if let Some(id) = staff_id.as_ref().filter(|id| duplicated_ids.contains(id)) {
            plan.skipped.push(SkippedEmployee {
                employee: employee.clone(),
                reasons: vec![SkipReason::DuplicateStateStaffId],
                detail: format!("State Staff ID {id} is held by more than one active employee"),
            });
            continue;
        }
        let by_id = staff_id
            .as_ref()
            .and_then(|id| educators_by_id.get(id).copied())
            .and_then(|i| Some((i, parsed.educators.get(i)?)));
        match by_id {
            Some((index, educator)) => match name_mismatch(employee, educator) {
                None => matches.push((employee, index)),
                Some(skip) => plan.skipped.push(skip),
            },
            None => match educators_by_name.get(&employee_name_key(employee)) {
                Some(educator) => plan.skipped.push(SkippedEmployee {
                    employee: employee.clone(),
                    reasons: vec![SkipReason::EducatorId],
                    detail: format!(
                        "Educator ID mismatch: ERP: {}, ALiS: {}",
                        employee
                            .state_staff_id
                            .as_deref()
                            .map_or("(none)", str::trim),
                        educator.raw_id
                    ),
                }),
                None => plan.unmatched.push(employee.clone()),
            },
        }
    }
    matches
}

/// The certifications whose status is imported; the others are counted by status.
fn importable(
    mut certifications: Vec<Certification>,
    not_imported_by_status: &mut BTreeMap<String, u64>,
) -> Vec<Certification> {
    certifications.retain(|certification| {
        let keep = certification.is_importable();
        if !keep {
            *not_imported_by_status
                .entry(certification.status_code())
                .or_default() += 1;
        }
        keep
    });
    certifications
}

/// The skip for an employee whose State Staff ID matches an educator whose name does
/// not, naming each mismatching field with both values; `None` when both names match.
fn name_mismatch(employee: &ActiveEmployee, educator: &Educator) -> Option<SkippedEmployee> {
    let mut reasons = Vec::new();
    let mut details = Vec::new();
    let fields = [
        (
            SkipReason::LastName,
            "last name",
            &employee.last_name,
            &educator.name.last,
        ),
        (
            SkipReason::FirstName,
            "first name",
            &employee.first_name,
            &educator.name.first,
        ),
    ];
    for (reason, label, erp, alis) in fields {
        if NameKey::new(erp) != NameKey::new(alis) {
            reasons.push(reason);
            details.push(format!("{label}: ERP: {}, ALiS: {}", erp.trim(), alis));
        }
    }
    (!reasons.is_empty()).then(|| SkippedEmployee {
        employee: employee.clone(),
        reasons,
        detail: details.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::import::records::Endorsement;

    fn employee(id: i64, staff_id: Option<&str>, last: &str, first: &str) -> ActiveEmployee {
        ActiveEmployee {
            id,
            employee_number: format!("E{id:05}"),
            state_staff_id: staff_id.map(str::to_owned),
            last_name: last.to_owned(),
            first_name: first.to_owned(),
            certification_required: true,
        }
    }

    fn certification(number: &str, status: &str) -> Certification {
        Certification {
            license_number: Some(number.to_owned()),
            license_type: "Level II Professional Educator".to_owned(),
            status: status.to_owned(),
            issue_date: None,
            expiration_date: None,
            endorsements: vec![Endorsement {
                code: "2-05".to_owned(),
                description: Some("English".to_owned()),
                grade_level: Some("7-12".to_owned()),
                issue_date: None,
                expiration_date: None,
                limits: vec![],
            }],
        }
    }

    fn educator(id: &str, last: &str, first: &str, statuses: &[&str]) -> Educator {
        Educator {
            id: EducatorId::parse(id).expect("test id"),
            raw_id: id.to_owned(),
            name: PersonName::new(last, first),
            certifications: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| certification(&format!("{id}-{i}"), s))
                .collect(),
        }
    }

    fn parsed(educators: Vec<Educator>) -> ParsedFile {
        ParsedFile {
            data_rows: educators.len() as u64,
            educators,
            ..ParsedFile::default()
        }
    }

    fn plan(employees: Vec<ActiveEmployee>, educators: Vec<Educator>) -> Plan {
        plan_import(&District::new(employees), &mut parsed(educators))
    }

    #[test]
    fn equal_id_and_names_match() {
        let plan = plan(
            vec![employee(1, Some("1001"), "Smith", "Ann")],
            vec![educator("1001", "Smith", "Ann", &["ACT"])],
        );
        assert_eq!(plan.matched.len(), 1);
        assert_eq!(plan.matched[0].certifications.len(), 1);
        assert!(plan.skipped.is_empty());
    }

    #[test]
    fn names_compare_after_trimming_collapsing_spaces_and_case_folding() {
        let plan = plan(
            vec![employee(1, Some("1001"), "  van  der BERG ", "ANNE MARIE")],
            vec![educator("1001", "Van der Berg", "anne   marie", &["ACT"])],
        );
        assert_eq!(plan.matched.len(), 1);
    }

    #[test]
    fn accents_and_punctuation_stay_significant() {
        let plan = plan(
            vec![employee(1, Some("1001"), "O'BRIEN", "Zoë")],
            vec![educator("1001", "OBrien", "Zoe", &["ACT"])],
        );
        assert!(plan.matched.is_empty());
        let skip = &plan.skipped[0];
        assert_eq!(
            skip.reasons,
            vec![SkipReason::LastName, SkipReason::FirstName]
        );
        assert_eq!(
            skip.detail,
            "last name: ERP: O'BRIEN, ALiS: OBrien; first name: ERP: Zoë, ALiS: Zoe"
        );
    }

    #[test]
    fn ids_with_leading_zeros_compare_as_numbers() {
        let plan = plan(
            vec![employee(1, Some("0001001"), "Smith", "Ann")],
            vec![educator(" 1001 ", "Smith", "Ann", &["ACT"])],
        );
        assert_eq!(plan.matched.len(), 1);
    }

    #[test]
    fn non_numeric_ids_compare_as_trimmed_text() {
        let plan = plan(
            vec![employee(1, Some("A01"), "Smith", "Ann")],
            vec![educator("A1", "Smith", "Ann", &["ACT"])],
        );
        assert!(plan.matched.is_empty());
        assert_eq!(plan.skipped[0].reasons, vec![SkipReason::EducatorId]);
    }

    #[test]
    fn equal_id_with_different_last_name_is_skipped_naming_both_values() {
        let plan = plan(
            vec![employee(1, Some("1001"), "Smith", "Ann")],
            vec![educator("1001", "Smyth", "Ann", &["ACT"])],
        );
        assert_eq!(plan.skipped[0].reasons, vec![SkipReason::LastName]);
        assert_eq!(plan.skipped[0].detail, "last name: ERP: Smith, ALiS: Smyth");
        assert!(plan.matched.is_empty());
    }

    #[test]
    fn equal_id_with_different_first_name_is_skipped() {
        let plan = plan(
            vec![employee(1, Some("1001"), "Smith", "Ann")],
            vec![educator("1001", "Smith", "Anne", &["ACT"])],
        );
        assert_eq!(plan.skipped[0].reasons, vec![SkipReason::FirstName]);
    }

    #[test]
    fn equal_names_with_different_id_are_skipped_for_educator_id() {
        let plan = plan(
            vec![employee(1, Some("1001"), "Smith", "Ann")],
            vec![educator("2002", "Smith", "Ann", &["ACT"])],
        );
        assert_eq!(plan.skipped[0].reasons, vec![SkipReason::EducatorId]);
        assert_eq!(
            plan.skipped[0].detail,
            "Educator ID mismatch: ERP: 1001, ALiS: 2002"
        );
    }

    #[test]
    fn equal_names_without_staff_id_are_skipped_for_educator_id() {
        let plan = plan(
            vec![employee(1, None, "Smith", "Ann")],
            vec![educator("2002", "Smith", "Ann", &["ACT"])],
        );
        assert_eq!(plan.skipped[0].reasons, vec![SkipReason::EducatorId]);
        assert_eq!(
            plan.skipped[0].detail,
            "Educator ID mismatch: ERP: (none), ALiS: 2002"
        );
    }

    #[test]
    fn a_match_by_id_wins_over_a_namesake_with_another_id() {
        let plan = plan(
            vec![employee(1, Some("1001"), "Smith", "Ann")],
            vec![
                educator("2002", "Smith", "Ann", &["ACT"]),
                educator("1001", "Smith", "Ann", &["UDR"]),
            ],
        );
        assert_eq!(plan.matched.len(), 1);
        assert!(plan.skipped.is_empty());
    }

    #[test]
    fn employees_sharing_a_staff_id_are_all_skipped() {
        let plan = plan(
            vec![
                employee(1, Some("1001"), "Smith", "Ann"),
                employee(2, Some("01001"), "Jones", "Bo"),
            ],
            vec![educator("1001", "Smith", "Ann", &["ACT"])],
        );
        assert!(plan.matched.is_empty());
        assert_eq!(plan.skipped.len(), 2);
        assert!(
            plan.skipped
                .iter()
                .all(|s| s.reasons == vec![SkipReason::DuplicateStateStaffId])
        );
    }

    #[test]
    fn employees_the_file_does_not_mention_are_unmatched() {
        let plan = plan(
            vec![
                employee(1, Some("1001"), "Smith", "Ann"),
                employee(2, None, "Jones", "Bo"),
            ],
            vec![educator("3003", "Other", "Person", &["ACT"])],
        );
        assert_eq!(plan.unmatched.len(), 2);
        assert!(plan.matched.is_empty() && plan.skipped.is_empty());
    }

    #[test]
    fn district_keeps_only_educators_it_may_employ() {
        let district = District::new(vec![employee(1, Some("1001"), "Smith", "Ann")]);
        let id = |s| EducatorId::parse(s).expect("id");
        assert!(district.may_employ(&id("001001"), &PersonName::new("X", "Y")));
        assert!(district.may_employ(&id("9"), &PersonName::new("SMITH", " ann ")));
        assert!(!district.may_employ(&id("9"), &PersonName::new("Smith", "Bo")));
    }

    #[test]
    fn district_keeps_records_only_of_educators_with_an_employees_id() {
        let district = District::new(vec![employee(1, Some("1001"), "Smith", "Ann")]);
        let id = |s| EducatorId::parse(s).expect("id");
        let ann = PersonName::new("Smith", "Ann");
        assert_eq!(district.keep(&id("001001"), &ann), Keep::Records);
        assert_eq!(
            district.keep(&id("001001"), &PersonName::new("X", "Y")),
            Keep::Records
        );
        assert_eq!(district.keep(&id("9"), &ann), Keep::NameOnly);
        assert_eq!(
            district.keep(&id("9"), &PersonName::new("Smith", "Bo")),
            Keep::Nothing
        );
    }

    /// Keeping only what [`District::keep`] asks for plans exactly what keeping every
    /// educator's records does.
    #[test]
    fn keeping_names_only_plans_as_keeping_everything() {
        let spec = crate::sample::SampleSpec {
            statewide_educators: 3_000,
            employees: 400,
            ..crate::sample::SampleSpec::default()
        };
        let mut file = Vec::new();
        crate::sample::write_statewide_file(&spec, &mut file).expect("sample file");
        let employees: Vec<ActiveEmployee> = crate::sample::district(&spec)
            .employees
            .iter()
            .filter(|e| e.status == "ACTIVE")
            .map(|e| {
                employee(
                    e.id,
                    e.state_staff_id.as_deref(),
                    &e.last_name,
                    &e.first_name,
                )
            })
            .collect();
        let district = District::new(employees);
        let parse = |keep: &dyn Fn(&EducatorId, &PersonName) -> Keep| {
            let settings = crate::import::alis_file::ParseSettings::default();
            crate::import::alis_file::parse(std::io::Cursor::new(&file), &settings, keep)
                .expect("sample parses")
        };
        let mut everything = parse(&|_, _| Keep::Records);
        let mut needed = parse(&|id, name| district.keep(id, name));
        assert!(needed.educators.iter().any(|e| e.certifications.is_empty()));
        let a = plan_import(&district, &mut everything);
        let b = plan_import(&district, &mut needed);
        assert_eq!(a.matched, b.matched);
        assert_eq!(a.skipped, b.skipped);
        assert_eq!(a.unmatched, b.unmatched);
        assert_eq!(a.not_imported_by_status, b.not_imported_by_status);
        assert!(!a.matched.is_empty() && !a.skipped.is_empty());
    }

    #[test]
    fn only_act_and_udr_certifications_are_imported_and_others_counted_by_status() {
        let plan = plan(
            vec![employee(1, Some("1001"), "Smith", "Ann")],
            vec![educator(
                "1001",
                "Smith",
                "Ann",
                &["ACT", " udr ", "EXP", "exp", "SUS"],
            )],
        );
        let statuses: Vec<_> = plan.matched[0]
            .certifications
            .iter()
            .map(|c| c.status.as_str())
            .collect();
        assert_eq!(statuses, vec!["ACT", " udr "]);
        assert_eq!(
            plan.not_imported_by_status,
            BTreeMap::from([("EXP".to_owned(), 2), ("SUS".to_owned(), 1)])
        );
        assert_eq!(plan.certification_count(), 2);
        assert_eq!(plan.endorsement_count(), 2);
    }

    #[test]
    fn a_matched_employee_with_only_expired_licences_holds_no_certification() {
        let plan = plan(
            vec![employee(1, Some("1001"), "Smith", "Ann")],
            vec![educator("1001", "Smith", "Ann", &["EXP"])],
        );
        assert_eq!(plan.matched.len(), 1);
        assert_eq!(plan.employees_with_certifications(), 0);
    }
}
