-- The sent journal (0007, docs/reliability.md §Crashes) protects against a Herald process dying between a provider's
-- answer and the commit that records it; it has nothing to offer after a crash of PostgreSQL itself, which replays
-- the queue anyway. An unlogged table writes no WAL: a journal insert is one statement whose commit does not wait for
-- a WAL flush, and the job's commit deletes its rows without logging them. What it costs: after a PostgreSQL crash
-- (not a clean restart) or on a promoted standby the journal starts empty, so the jobs in flight at that moment may
-- repeat sends that were on the wire — duplicates, never a lost send.
ALTER TABLE sent_journal SET UNLOGGED;
