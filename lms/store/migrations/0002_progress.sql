-- Learner progress per content, and the video duration that completion is measured against.

-- Filled by the transcoder once it has probed the upload; NULL until then, and progress on a
-- video without a duration is refused (there is nothing to measure coverage against).
ALTER TABLE contents
    ADD COLUMN duration_seconds double precision
    CHECK (duration_seconds IS NULL OR duration_seconds > 0);

-- One row per (learner, content), written by the progress writer (see lms/domain/progress.py for
-- the rules). `played` is the union of played segments, flattened: [start0, end0, start1, ...].
-- `watched_seconds` and `duration` are derived (the total length of `played`, the content's
-- duration at the last write), kept for analytics queries that do not unpack arrays.
CREATE TABLE progress (
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content_id      bigint NOT NULL REFERENCES contents (id) ON DELETE CASCADE,
    course_id       bigint NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    position        double precision NOT NULL DEFAULT 0 CHECK (position >= 0),
    position_at     timestamptz,
    played          double precision[] NOT NULL DEFAULT '{}'
                    CHECK (cardinality(played) % 2 = 0),
    watched_seconds double precision NOT NULL DEFAULT 0 CHECK (watched_seconds >= 0),
    duration        double precision,
    completed_at    timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, content_id)
);
CREATE INDEX progress_course_idx ON progress (course_id, user_id);
