-- The service's own tables: import tasks (schedules), their runs, and each run's
-- report and error log.

create table import_tasks (
    id bigint generated always as identity primary key,
    description text not null,
    active boolean not null,
    start_date date not null,
    -- wall-clock time in `time_zone`, `HH:MM:SS`
    start_time text not null,
    -- bit 0 = Monday … bit 6 = Sunday; 0 means "once, at the start date"
    weekdays integer not null,
    time_zone text not null,
    saved_by text not null,
    saved_at timestamptz not null default now()
);

create table import_runs (
    id bigint generated always as identity primary key,
    task_id bigint null references import_tasks on delete set null,
    status text not null check (status in ('WAITING', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED')),
    phase text null,
    scheduled_for timestamptz null,
    started_at timestamptz null,
    ended_at timestamptz null,
    run_by text not null,
    dry_run boolean not null default false,
    force boolean not null default false,
    idempotency_key text null unique,
    file_name text null,
    file_sha256 text null,
    file_from_cache boolean null,
    error text null,
    heartbeat_at timestamptz null,
    owner text null,
    created_at timestamptz not null default now()
);

create index import_runs_task_id on import_runs (task_id);
create index import_runs_status on import_runs (status);

create table import_reports (
    run_id bigint primary key references import_runs on delete cascade,
    summary jsonb not null,
    pdf bytea null,
    created_at timestamptz not null default now()
);

create table import_run_log (
    id bigint generated always as identity primary key,
    run_id bigint not null references import_runs on delete cascade,
    logged_at timestamptz not null default now(),
    level text not null check (level in ('INFO', 'WARN', 'ERROR')),
    message text not null
);

create index import_run_log_run_id on import_run_log (run_id);
