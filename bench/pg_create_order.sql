-- pgbench script: PostgreSQL's own create-order transaction, the peer of eventfold's
-- CreateOrder (POST /api/orders) in bench/pg_bench.py. The same checks and writes as the
-- command: the order id is new (primary key), the user exists, each of 1 to 3 distinct
-- random items exists and has the stock (rows locked in item order, so no deadlocks), then
-- the stock is decremented and the order and its lines are inserted with the prices and the
-- amount (one statement); READ COMMITTED with row locks, committed with synchronous_commit on (durable
-- before pgbench sees the answer). :users and :items are set with pgbench -D.
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
BEGIN;
SELECT count(*) AS user_ok FROM users WHERE user_id = 'bench-u' || :uid \gset
SELECT count(*) AS found, coalesce(bool_and(stock >= 1), false)::int AS stock_ok,
       coalesce(sum(price_cents), 0) AS amount
  FROM (SELECT stock, price_cents FROM items
         WHERE item_id = ANY ((ARRAY['bench-i' || :a, 'bench-i' || :b, 'bench-i' || :c])[1 : :n])
         ORDER BY item_id FOR UPDATE) AS locked \gset
\if :user_ok = 1 and :found = :n and :stock_ok = 1
WITH o AS (INSERT INTO orders (user_id, amount_cents) VALUES ('bench-u' || :uid, :amount)
           RETURNING order_id),
     s AS (UPDATE items SET stock = stock - 1
            WHERE item_id = ANY ((ARRAY['bench-i' || :a, 'bench-i' || :b, 'bench-i' || :c])[1 : :n])
           RETURNING item_id, name, category, price_cents)
INSERT INTO order_lines (order_id, item_id, name, category, quantity, price_cents)
SELECT o.order_id, s.item_id, s.name, s.category, 1, s.price_cents FROM o, s;
COMMIT;
\else
ROLLBACK;
\endif
