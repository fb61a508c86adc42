-- The PostgreSQL migration of this number drops per-row parent checks from the tables written for every delivery,
-- where each check is a query on another table. SQLite checks them in-process at a fraction of that cost; nothing
-- changes here. Kept so that both databases carry the same migration numbers.
SELECT 1;
