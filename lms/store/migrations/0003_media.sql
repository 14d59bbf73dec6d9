-- Resumable uploads, durable transcode jobs, the workers that run them, and published videos.

-- One row per tus upload (and per multipart upload, created complete). The bytes live in the
-- media volume at uploads/<id>.part while they arrive; `upload_offset` is written only after the
-- bytes before it are on disk, so a restarted node resumes exactly where the client left off.
CREATE TABLE uploads (
    id              uuid PRIMARY KEY,
    owner_id        bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    content_id      bigint NOT NULL REFERENCES contents (id) ON DELETE CASCADE,
    filename        text NOT NULL,
    upload_length   bigint NOT NULL CHECK (upload_length >= 0),
    upload_offset   bigint NOT NULL DEFAULT 0
                    CHECK (upload_offset >= 0 AND upload_offset <= upload_length),
    state           text NOT NULL DEFAULT 'receiving'
                    CHECK (state IN ('receiving', 'complete', 'terminated')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    -- An unfinished upload nobody touched for a while stops counting against its owner's limit.
    expires_at      timestamptz NOT NULL
);
CREATE INDEX uploads_owner_receiving_idx ON uploads (owner_id) WHERE state = 'receiving';

-- The transcode queue. Any node or `lms worker` claims a queued job with FOR UPDATE SKIP LOCKED
-- and holds it under a lease it must renew; a job whose lease runs out is taken again. Every
-- claim gets a new lease_id, and finishing is fenced on it, so a job never completes twice.
CREATE TABLE jobs (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    content_id      bigint NOT NULL REFERENCES contents (id) ON DELETE CASCADE,
    upload_id       uuid REFERENCES uploads (id) ON DELETE SET NULL,
    uploader_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    source          text NOT NULL,          -- the uploaded file, relative to the media volume
    state           text NOT NULL DEFAULT 'queued'
                    CHECK (state IN ('queued', 'running', 'done', 'failed', 'cancelled')),
    stage           text,                   -- while running: probing, transcoding, packaging
    progress        double precision NOT NULL DEFAULT 0 CHECK (progress >= 0 AND progress <= 1),
    eta_seconds     double precision,
    attempts        integer NOT NULL DEFAULT 0,
    max_attempts    integer NOT NULL CHECK (max_attempts >= 1),
    lease_id        uuid,
    lease_until     timestamptz,
    worker_id       text,                   -- the last worker to claim it
    node_id         text,
    heartbeat_at    timestamptz,
    workdir         text,                   -- the running attempt's output, relative
    renditions      jsonb NOT NULL DEFAULT '[]',  -- playable so far in the running attempt
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    started_at      timestamptz,
    finished_at     timestamptz,
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_queued_idx ON jobs (id) WHERE state = 'queued';
CREATE INDEX jobs_lease_idx ON jobs (lease_until) WHERE state = 'running';
CREATE INDEX jobs_content_idx ON jobs (content_id, id DESC);

-- Transcoder slots (of nodes and of `lms worker` processes), renewed while they live.
CREATE TABLE workers (
    id              text PRIMARY KEY,
    node_id         text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('node', 'worker')),
    host            text NOT NULL,
    pid             integer NOT NULL,
    job_id          bigint REFERENCES jobs (id) ON DELETE SET NULL,
    started_at      timestamptz NOT NULL DEFAULT now(),
    heartbeat_at    timestamptz NOT NULL DEFAULT now()
);

-- The published video of a content: the directory a finished job was moved to, and what it holds.
CREATE TABLE videos (
    content_id      bigint PRIMARY KEY REFERENCES contents (id) ON DELETE CASCADE,
    job_id          bigint REFERENCES jobs (id) ON DELETE SET NULL,
    path            text NOT NULL,          -- relative to the media volume
    manifest        jsonb NOT NULL,         -- proto.media.MediaManifest
    published_at    timestamptz NOT NULL DEFAULT now()
);
