-- The PostgreSQL migration of this number makes the sent journal an unlogged table. On SQLite the journal is a file
-- beside the database (docs/reliability.md §Crashes); nothing changes here. Kept so that both databases carry the
-- same migration numbers.
SELECT 1;
