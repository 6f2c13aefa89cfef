-- Pushes are queued by Git itself (the branch and its journal), and every SQL follow-up of a
-- commit is derived again from Git by the index sync: the job outbox was never used.
DROP TABLE outbox;
