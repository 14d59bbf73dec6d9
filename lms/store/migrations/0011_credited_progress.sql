-- Progress that cannot be faked (lms/domain/progress.py `credit`): a learner's watched time may
-- grow no faster than the wall clock times the course's maximum playback rate; a claim beyond
-- that is clamped and counted, for the course's instructor to see.
--
-- Additive only: the previous release inserts and updates progress rows without these columns
-- (a row it writes keeps its `credited_at`, or has none, which the rules read as a first
-- heartbeat) and inserts courses that get the default rate.
ALTER TABLE courses
    ADD COLUMN max_playback_rate double precision NOT NULL DEFAULT 2.0
    CHECK (max_playback_rate >= 1 AND max_playback_rate <= 16);

-- `credited_at`: the server's time up to which the row's credit is spent (its last credit, less
-- the unused allowance carried over; NULL: never credited). `clamped_seconds`: new coverage its
-- heartbeats claimed beyond the allowance, never credited, summed.
ALTER TABLE progress
    ADD COLUMN credited_at timestamptz,
    ADD COLUMN clamped_seconds double precision NOT NULL DEFAULT 0
    CHECK (clamped_seconds >= 0);
