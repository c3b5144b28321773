-- The file cache (rules §1.2, design §3.2): the three newest ALiS files a run
-- downloaded, in the database so that every replica sees them. One row per file name:
-- a file re-published under the same name replaces its superseded contents.
--
-- `file_date` and `file_time` repeat the name's datestamp so that "newest" can be
-- ordered in SQL exactly as `AlisFileName` orders it: date, then time (a name without
-- a time first), then the name. `bytes` is stored as it is: PostgreSQL's TOAST already
-- compresses it (a 9.1 MB statewide sample file is stored in 1.6 MB with pglz), so the
-- service does not.

create table file_cache (
    id bigint generated always as identity primary key,
    name text not null unique,
    file_date date not null,
    file_time time null,
    -- lowercase hex
    sha256 text not null check (sha256 ~ '^[0-9a-f]{64}$'),
    size bigint not null check (size >= 0),
    -- the file's modification time in the source's listing when it was downloaded:
    -- with the name and size, what tells a later listing that the file is unchanged
    source_modified timestamptz not null,
    stored_at timestamptz not null,
    bytes bytea not null,
    check (octet_length(bytes) = size)
);

-- SFTP connection events (design §3.2, §7): failed connections, refused
-- authentication, host key mismatches, timeouts, transfer errors. They belong to the
-- server's history, not to a run, so a run's removal keeps them.

create table connection_events (
    id bigint generated always as identity primary key,
    occurred_at timestamptz not null,
    host text not null,
    -- a short machine-readable word, e.g. `auth_refused`, `fingerprint_mismatch`
    kind text not null,
    -- the operator's message; never a password or token
    detail text not null,
    run_id bigint null references import_runs on delete set null
);

create index connection_events_occurred_at on connection_events (occurred_at);
create index connection_events_run_id on connection_events (run_id);
