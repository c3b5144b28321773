-- The ERP's own tables (design §3.1), SQLite flavour: dates are ISO `YYYY-MM-DD`
-- text, booleans 0/1. Applied only when `manage_erp_schema` is on.

create table job_classes (
    id integer primary key,
    code text unique not null,
    description text not null,
    certification_required integer not null default 0
);

create table employees (
    id integer primary key,
    employee_number text unique not null,
    state_staff_id text null,
    last_name text not null,
    first_name text not null,
    status text not null check (status in ('ACTIVE', 'TERMINATED')),
    job_class_id integer null references job_classes
);

create table certifications (
    id integer primary key,
    employee_id integer not null references employees,
    license_number text null,
    license_type text not null,
    status text not null,
    issue_date text null,
    expiration_date text null,
    source text not null check (source in ('ALIS', 'MANUAL')),
    import_run_id integer null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

create index certifications_employee_id on certifications (employee_id);

create table endorsements (
    id integer primary key,
    certification_id integer not null references certifications on delete cascade,
    employee_id integer not null references employees,
    code text not null,
    description text null,
    grade_level text null,
    issue_date text null,
    expiration_date text null,
    limits text null,
    is_primary integer not null default 0,
    source text not null check (source in ('ALIS', 'MANUAL')),
    import_run_id integer null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

create index endorsements_certification_id on endorsements (certification_id);
create index endorsements_employee_id on endorsements (employee_id);

create table endorsement_codes (
    code text primary key,
    description text null
);
