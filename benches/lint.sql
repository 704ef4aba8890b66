-- safeguard.lint() on a generated schema of 1,000 tables: each with a primary key, a tenant
-- column, a foreign key to the previous table, a few more columns; every other one with an index
-- on the tenant column, every third with row-level security and a policy (restrictive where isolated), every fifth isolated
-- with safeguard.isolate(), every seventh with a timestamp-without-time-zone column, and a view
-- over every tenth. lint() is run 5 times; the median is reported against the 1-second target.
SET client_min_messages = warning;
\pset footer off
CREATE SCHEMA lint_bench;
DO $$
BEGIN
    FOR i IN 1..1000 LOOP
        EXECUTE format('CREATE TABLE lint_bench.t%s (id bigint PRIMARY KEY, tenant_id uuid %s, parent_id bigint %s,
                                                       name text, note text, %s created_at timestamptz DEFAULT now())',
                       i, CASE WHEN i % 4 = 0 THEN '' ELSE 'NOT NULL' END,
                       CASE WHEN i > 1 THEN format('REFERENCES lint_bench.t%s', i - 1) ELSE '' END,
                       CASE WHEN i % 7 = 0 THEN 'seen_at timestamp,' ELSE '' END);
        IF i % 2 = 0 THEN
            EXECUTE format('CREATE INDEX ON lint_bench.t%s (tenant_id)', i);
        END IF;
        IF i % 3 = 0 THEN
            EXECUTE format('ALTER TABLE lint_bench.t%s ENABLE ROW LEVEL SECURITY', i);
            -- restrictive where the table is isolated too: isolate() refuses a permissive one beside it
            EXECUTE format('CREATE POLICY p ON lint_bench.t%s AS %s USING (tenant_id = current_setting(''app.tenant'')::uuid)',
                           i, CASE WHEN i % 5 = 0 THEN 'RESTRICTIVE' ELSE 'PERMISSIVE' END);
        END IF;
        IF i % 5 = 0 THEN
            PERFORM safeguard.isolate(format('lint_bench.t%s', i));
        END IF;
        IF i % 10 = 0 THEN
            EXECUTE format('CREATE VIEW lint_bench.v%s AS SELECT id, name FROM lint_bench.t%s', i, i);
        END IF;
    END LOOP;
END $$;
ANALYZE;
CREATE TEMP TABLE lint_timings (rep int, ms float8, findings bigint);
DO $$
DECLARE
    started timestamptz;
    n bigint;
BEGIN
    PERFORM count(*) FROM safeguard.lint();  -- warm-up (catalog caches)
    FOR rep IN 1..5 LOOP
        started := clock_timestamp();
        SELECT count(*) INTO n FROM safeguard.lint();
        INSERT INTO lint_timings VALUES (rep, 1000 * extract(epoch FROM clock_timestamp() - started), n);
    END LOOP;
END $$;
SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
         WHERE s.nspname = 'lint_bench' AND c.relkind = 'r') AS tables,
       max(findings) AS findings,
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric) AS median_ms,
       round(min(ms)::numeric) AS min_ms, round(max(ms)::numeric) AS max_ms,
       '< 1000' AS target,
       CASE WHEN percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) < 1000 THEN 'met' ELSE 'NOT met' END AS status
  FROM lint_timings;
SELECT level, rule, count(*) FROM safeguard.lint() GROUP BY 1, 2 ORDER BY 1, 2;
-- One table per transaction: dropping a thousand at once needs more locks than the default allows.
SELECT format('DROP TABLE lint_bench.t%s CASCADE', i) FROM generate_series(1000, 1, -1) i \gexec
DROP SCHEMA lint_bench CASCADE;
