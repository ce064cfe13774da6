-- pgbench script: PostgreSQL's own create-order transaction, the peer of eventfold's
-- CreateOrder (POST /api/orders) in bench/pg_bench.py: one call of create_order(), the
-- function pg_bench.py defines, in its own transaction (autocommit), committed with
-- synchronous_commit on (durable before pgbench sees the answer). One round trip, so that
-- the rows it locks are held for the transaction's own work and its commit only. User and
-- 1 to 3 distinct items drawn at random; :users and :items are set with pgbench -D.
\set uid random(1, :users)
\set n random(1, 3)
\set a random(1, :items)
\set b random(1, :items - 1)
\set c random(1, :items - 2)
-- b and c drawn from the items not yet taken: distinct lines, as eventfold requires.
\set b :b + (case when :b >= :a then 1 else 0 end)
\set lo least(:a, :b)
\set hi greatest(:a, :b)
\set c :c + (case when :c >= :lo then 1 else 0 end)
\set c :c + (case when :c >= :hi then 1 else 0 end)
SELECT create_order('bench-u' || :uid, (ARRAY['bench-i' || :a, 'bench-i' || :b, 'bench-i' || :c])[1 : :n]);
