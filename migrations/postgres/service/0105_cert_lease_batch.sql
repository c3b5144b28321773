-- The lease desk's batch of grants and releases as one function call (the service's
-- src/store/lock.rs and src/lock/desk.rs describe the batch).
--
-- Grants: every lease of the batch is inserted at the lock's epoch while the lock row
-- reads FREE, or none is. The row is read `for share`, and only a FREE row: an import
-- marking the lock PENDING waits for the batch to commit and then counts its leases,
-- and a batch never waits for an import that holds the lock. After waiting for such an
-- update the row is read again: nothing is inserted, and the row returned still reads
-- FREE (the statement's snapshot), for the caller to try again.
--
-- Releases: each lease named is deleted if it is the named subject's; `released`
-- lists those deleted.
--
-- Why a function: the statement planned on every call cost more than running it
-- (about 0.15 ms of 0.4 ms in pgbench), and a plan prepared once may scan the whole
-- table: prepared while the table was near empty, it chose a sequential scan that
-- every deleted lease (a dead row until vacuum) then made slower. PL/pgSQL keeps the
-- plan, and `enable_seqscan = off` for the function's own statements keeps it on the
-- primary key's index however the table's statistics look.
create function cert_lease_batch(
    grant_ids text[],
    grant_holders text[],
    grant_subjects text[],
    grant_acquired timestamptz[],
    grant_expires timestamptz[],
    release_ids text[],
    release_subjects text[],
    out state text,
    out epoch bigint,
    out run_id bigint,
    out changed_at timestamptz,
    out granted_epoch bigint,
    out granted bigint,
    out released text[]
)
language plpgsql
set enable_seqscan = off
as $$
begin
    with l as (
        select c.epoch from cert_lock c where c.id = 1 and c.state = 'FREE' for share
    ),
    g as (
        insert into cert_leases (id, holder, subject, epoch, acquired_at, expires_at)
        select t.id, t.holder, t.subject, l.epoch, t.acquired_at, t.expires_at
        from l,
            unnest(grant_ids, grant_holders, grant_subjects, grant_acquired, grant_expires)
                as t(id, holder, subject, acquired_at, expires_at)
        returning cert_leases.epoch
    ),
    r as (
        delete from cert_leases c
        using unnest(release_ids, release_subjects) as t(id, subject)
        where c.id = t.id and c.subject = t.subject
        returning c.id
    )
    select c.state, c.epoch, c.run_id, c.changed_at, (select min(g.epoch) from g),
        (select count(*) from g), array(select r.id from r)
    into state, epoch, run_id, changed_at, granted_epoch, granted, released
    from cert_lock c
    where c.id = 1;
end
$$;
