-- A job whose attempt crashed (a full media volume, a killed worker) waits before it is claimed
-- again, longer after each crash (lms/domain/jobs.py `retry_delay`): a fault of the machine
-- needs time to clear, and a crash loop should not spend every attempt within seconds.
--
-- Additive only: the previous release's nodes ignore the column and claim such a job at once,
-- as they always did.
ALTER TABLE jobs ADD COLUMN retry_at timestamptz;
