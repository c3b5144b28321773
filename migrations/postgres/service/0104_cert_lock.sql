-- The certification lock (design §6): a readers-writer lock with writer preference,
-- held in the database so that every replica, the CLI and the ERP agree on it.
--
-- `cert_lock` is exactly one row. Its states:
--
--   FREE     no import needs it: edit leases are granted.
--   PENDING  an import wants it (writer preference): new leases are refused; leases
--            granted before may still write until released or expired.
--   HELD     an import holds it exclusively: leases are refused, and the triggers
--            below refuse manual writes to certifications and endorsements.
--   WRITING  never committed. The importing transaction moves the row from HELD to
--            WRITING as its first statement (the fence check, under the row lock) and
--            to FREE as its last, so every other session reads HELD until the replace
--            commits. Only the importing transaction sees WRITING, and that is what
--            exempts its own deletes of MANUAL rows from the triggers.
--
-- `epoch` is the fencing token. Each import increments it when it marks the lock
-- PENDING; its replace transaction writes only if the row still says HELD, at that
-- epoch, for that run. An importer that paused while another replica declared it lost
-- and took the lock over finds a newer epoch (or a FREE lock) and writes nothing.

create table cert_lock (
    id integer primary key check (id = 1),
    state text not null check (state in ('FREE', 'PENDING', 'HELD', 'WRITING')),
    epoch bigint not null check (epoch >= 0),
    -- the import that marked it PENDING or holds it; null when FREE
    run_id bigint null references import_runs on delete set null,
    changed_at timestamptz not null
);

insert into cert_lock (id, state, epoch, run_id, changed_at) values (1, 'FREE', 0, null, now());

-- Edit leases: shared, each with a TTL (capped by the service) and the epoch of the
-- lock when it was granted (its fencing token). A lease counts until it is released
-- (the row is deleted) or its `expires_at` passes (by the service's clock).
create table cert_leases (
    -- random, 32 hex digits
    id text primary key,
    -- what the edit service said it is doing, for operators
    holder text not null,
    -- the authenticated identity that took it; only it may release the lease
    subject text not null,
    epoch bigint not null,
    acquired_at timestamptz not null,
    expires_at timestamptz not null,
    check (expires_at > acquired_at)
);

create index cert_leases_expires_at on cert_leases (expires_at);

-- What a running import is waiting for in its phase (e.g. the number of outstanding
-- edit leases), so that WatchRun on any replica can show it.
alter table import_runs add column phase_detail text null;

-- Defence in depth: while an import holds the lock, refuse writes of MANUAL rows to
-- the ERP's certification tables, whoever makes them, with the message the API uses.
-- The importing transaction itself reads the lock row as WRITING (see above), so its
-- deletes of MANUAL rows of active employees pass. These triggers are the service's
-- migration: they are created on the ERP's tables even when the service does not
-- manage the ERP schema.
create function cert_lock_refuse_manual_write() returns trigger
language plpgsql as $$
begin
    if exists (select 1 from cert_lock where id = 1 and state = 'HELD') then
        raise exception using
            message = 'Certification data update is in Progress.',
            errcode = '55000',
            hint = 'An ALiS import is replacing certification records: retry after it ends.';
    end if;
    if tg_op = 'DELETE' then
        return old;
    end if;
    return new;
end;
$$;

create trigger certifications_manual_insert_locked before insert on certifications
    for each row when (new.source = 'MANUAL')
    execute function cert_lock_refuse_manual_write();
create trigger certifications_manual_update_locked before update on certifications
    for each row when (old.source = 'MANUAL' or new.source = 'MANUAL')
    execute function cert_lock_refuse_manual_write();
create trigger certifications_manual_delete_locked before delete on certifications
    for each row when (old.source = 'MANUAL')
    execute function cert_lock_refuse_manual_write();

create trigger endorsements_manual_insert_locked before insert on endorsements
    for each row when (new.source = 'MANUAL')
    execute function cert_lock_refuse_manual_write();
create trigger endorsements_manual_update_locked before update on endorsements
    for each row when (old.source = 'MANUAL' or new.source = 'MANUAL')
    execute function cert_lock_refuse_manual_write();
create trigger endorsements_manual_delete_locked before delete on endorsements
    for each row when (old.source = 'MANUAL')
    execute function cert_lock_refuse_manual_write();
