-- Runs as the scheduler and RunNow need them (design §4, §5).

-- The task's description when the run was created: a run outlives its task (deleting a
-- task keeps its past runs), and the runs page still shows and filters by it.
alter table import_runs add column task_description text null;

update import_runs set task_description = (
    select t.description from import_tasks t where t.id = import_runs.task_id
) where task_id is not null;

-- One import at a time per database, enforced by the database itself so that the
-- server, the CLI and RunNow agree: at most one row can be IN_PROGRESS. The store maps
-- a violation of this index (by name) to "busy".
create unique index import_runs_one_in_progress on import_runs ((1))
    where status = 'IN_PROGRESS';

-- The next occurrence of a task exists as exactly one WAITING run.
create unique index import_runs_one_waiting_per_task on import_runs (task_id)
    where status = 'WAITING';

-- Claiming: the earliest due WAITING run.
create index import_runs_waiting_due on import_runs (scheduled_for)
    where status = 'WAITING';

-- The runs page: newest first, keyset-paginated.
create index import_runs_page_order
    on import_runs (coalesce(scheduled_for, started_at, created_at) desc, id desc);
