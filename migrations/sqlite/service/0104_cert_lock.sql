-- The certification lock (design §6). The same design as PostgreSQL's migration 0104,
-- which explains the states (FREE, PENDING, HELD, and the never-committed WRITING that
-- only the importing transaction sees) and the epoch (fencing token).
--
-- On SQLite the importing transaction is `begin immediate`: it holds the database's
-- one write lock, so no other connection writes while it replaces, and readers (WAL)
-- keep seeing the committed HELD until it commits.

create table cert_lock (
    id integer primary key check (id = 1),
    state text not null check (state in ('FREE', 'PENDING', 'HELD', 'WRITING')),
    epoch integer not null check (epoch >= 0),
    run_id integer null references import_runs on delete set null,
    changed_at text not null
);

insert into cert_lock (id, state, epoch, run_id, changed_at)
    values (1, 'FREE', 0, null, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'));

create table cert_leases (
    id text primary key,
    holder text not null,
    subject text not null,
    epoch integer not null,
    acquired_at text not null,
    expires_at text not null,
    check (expires_at > acquired_at)
);

create index cert_leases_expires_at on cert_leases (expires_at);

alter table import_runs add column phase_detail text null;

-- Defence in depth, as on PostgreSQL: MANUAL rows cannot be written while an import
-- holds the lock. `raise(abort, …)` rolls back the statement with exactly the API's
-- message. The importing connection reads the lock row as WRITING, so it is exempt.

create trigger certifications_manual_insert_locked before insert on certifications
    for each row when new.source = 'MANUAL'
        and exists (select 1 from cert_lock where id = 1 and state = 'HELD')
begin
    select raise(abort, 'Certification data update is in Progress.');
end;

create trigger certifications_manual_update_locked before update on certifications
    for each row when (old.source = 'MANUAL' or new.source = 'MANUAL')
        and exists (select 1 from cert_lock where id = 1 and state = 'HELD')
begin
    select raise(abort, 'Certification data update is in Progress.');
end;

create trigger certifications_manual_delete_locked before delete on certifications
    for each row when old.source = 'MANUAL'
        and exists (select 1 from cert_lock where id = 1 and state = 'HELD')
begin
    select raise(abort, 'Certification data update is in Progress.');
end;

create trigger endorsements_manual_insert_locked before insert on endorsements
    for each row when new.source = 'MANUAL'
        and exists (select 1 from cert_lock where id = 1 and state = 'HELD')
begin
    select raise(abort, 'Certification data update is in Progress.');
end;

create trigger endorsements_manual_update_locked before update on endorsements
    for each row when (old.source = 'MANUAL' or new.source = 'MANUAL')
        and exists (select 1 from cert_lock where id = 1 and state = 'HELD')
begin
    select raise(abort, 'Certification data update is in Progress.');
end;

create trigger endorsements_manual_delete_locked before delete on endorsements
    for each row when old.source = 'MANUAL'
        and exists (select 1 from cert_lock where id = 1 and state = 'HELD')
begin
    select raise(abort, 'Certification data update is in Progress.');
end;
