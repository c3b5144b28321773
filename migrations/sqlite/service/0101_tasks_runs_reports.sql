-- The service's own tables: import tasks (schedules), their runs, and each run's
-- report and error log. Timestamps are RFC 3339 UTC text.

create table import_tasks (
    id integer primary key autoincrement,
    description text not null,
    active integer not null,
    start_date text not null,
    -- wall-clock time in `time_zone`, `HH:MM:SS`
    start_time text not null,
    -- bit 0 = Monday … bit 6 = Sunday; 0 means "once, at the start date"
    weekdays integer not null,
    time_zone text not null,
    saved_by text not null,
    saved_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

create table import_runs (
    id integer primary key autoincrement,
    task_id integer null references import_tasks on delete set null,
    status text not null check (status in ('WAITING', 'IN_PROGRESS', 'SUCCEEDED', 'FAILED')),
    phase text null,
    scheduled_for text null,
    started_at text null,
    ended_at text null,
    run_by text not null,
    dry_run integer not null default 0,
    force integer not null default 0,
    idempotency_key text null unique,
    file_name text null,
    file_sha256 text null,
    file_from_cache integer null,
    error text null,
    heartbeat_at text null,
    owner text null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

create index import_runs_task_id on import_runs (task_id);
create index import_runs_status on import_runs (status);

create table import_reports (
    run_id integer primary key references import_runs on delete cascade,
    summary text not null,
    pdf blob null,
    created_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

create table import_run_log (
    id integer primary key autoincrement,
    run_id integer not null references import_runs on delete cascade,
    logged_at text not null default (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    level text not null check (level in ('INFO', 'WARN', 'ERROR')),
    message text not null
);

create index import_run_log_run_id on import_run_log (run_id);
