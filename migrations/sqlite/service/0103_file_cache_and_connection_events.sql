-- The file cache (rules §1.2, design §3.2): the three newest ALiS files a run
-- downloaded, in the database so that every replica sees them. One row per file name:
-- a file re-published under the same name replaces its superseded contents.
--
-- `file_date` (`YYYY-MM-DD`) and `file_time` (`HH:MM:SS`) repeat the name's datestamp
-- so that "newest" can be ordered in SQL exactly as `AlisFileName` orders it: date,
-- then time (a name without a time first), then the name. `bytes` is stored
-- uncompressed: three statewide files are about 27 MB, which the embedded default can
-- afford. Timestamps are RFC 3339 UTC text with microseconds, which sorts as text.

create table file_cache (
    id integer primary key autoincrement,
    name text not null unique,
    file_date text not null,
    file_time text null,
    -- lowercase hex
    sha256 text not null check (length(sha256) = 64 and sha256 not glob '*[^0-9a-f]*'),
    size integer not null check (size >= 0),
    -- the file's modification time in the source's listing when it was downloaded:
    -- with the name and size, what tells a later listing that the file is unchanged
    source_modified text not null,
    stored_at text not null,
    bytes blob not null,
    check (length(bytes) = size)
);

-- SFTP connection events (design §3.2, §7): failed connections, refused
-- authentication, host key mismatches, timeouts, transfer errors. They belong to the
-- server's history, not to a run, so a run's removal keeps them.

create table connection_events (
    id integer primary key autoincrement,
    occurred_at text not null,
    host text not null,
    -- a short machine-readable word, e.g. `auth_refused`, `fingerprint_mismatch`
    kind text not null,
    -- the operator's message; never a password or token
    detail text not null,
    run_id integer null references import_runs on delete set null
);

create index connection_events_occurred_at on connection_events (occurred_at);
create index connection_events_run_id on connection_events (run_id);
