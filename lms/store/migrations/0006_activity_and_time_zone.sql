-- What each learner watched and completed, per content and UTC hour: the history behind streaks,
-- watch time over time and active users (the progress row keeps only where a learner stands).
-- The progress writer adds to it in the statement that writes the progress rows, only what
-- that statement newly credited, so a replayed heartbeat adds nothing and a completion counts
-- once. Hours are UTC: days are derived in the learner's time zone when read, so a change of
-- zone or a DST change needs no rewrite. `course_id` is the content's (as in `progress`), for
-- course reads without a join; its rows go with the content's. A row is updated by every
-- heartbeat of its hour: room left on each page keeps those updates off the indexes (HOT).
CREATE TABLE activity_hourly (
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content_id      bigint NOT NULL REFERENCES contents (id) ON DELETE CASCADE,
    hour            timestamptz NOT NULL,  -- the start of a UTC hour
    course_id       bigint NOT NULL,
    watched_seconds double precision NOT NULL DEFAULT 0 CHECK (watched_seconds >= 0),
    completions     integer NOT NULL DEFAULT 0 CHECK (completions >= 0),
    PRIMARY KEY (user_id, content_id, hour)
) WITH (fillfactor = 70);
-- A learner's history over a range; a course's; everyone's since a time (active users).
CREATE INDEX activity_hourly_user_idx ON activity_hourly (user_id, hour);
CREATE INDEX activity_hourly_course_idx ON activity_hourly (course_id, hour);
CREATE INDEX activity_hourly_hour_idx ON activity_hourly (hour);

-- The learner's IANA time zone (checked by the API), in which their days are counted.
ALTER TABLE users ADD COLUMN time_zone text NOT NULL DEFAULT 'UTC';
