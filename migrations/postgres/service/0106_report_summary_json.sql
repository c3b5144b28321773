-- The report's summary is stored as `json`, and both it and the PDF are compressed
-- with LZ4 where the server can.
--
-- The summary is written once, read back whole (GetReport, `report show`) and never
-- queried inside, so `jsonb`'s decomposed form bought nothing and cost most of a run's
-- end: for a district of 100,000 employees the summary is about 12 MB of JSON, which
-- PostgreSQL took 0.15 s to turn into `jsonb` against 0.03 s to check as `json`, and
-- then 0.06-0.1 s more to compress with its default pglz against about 0.02 s with
-- LZ4 (BENCHMARKS.md). `json` keeps the text as the service wrote it. The same
-- report's 7 MB PDF took pglz 65 ms and LZ4 16 ms, both to about 1.2 MB.
alter table import_reports alter column summary type json using summary::json;

-- Column compression needs PostgreSQL 14 and a server built with LZ4 (Debian's and
-- the official images are); elsewhere both stay compressed with pglz.
do $$
begin
    if current_setting('server_version_num')::int >= 140000 then
        execute 'alter table import_reports alter column summary set compression lz4, '
            'alter column pdf set compression lz4';
    end if;
exception when feature_not_supported then
    raise notice 'LZ4 is not available on this server: reports are compressed with pglz';
end
$$;
