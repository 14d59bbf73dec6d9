-- Accounts, refresh-token families, courses with modules and contents, enrolments.

CREATE TABLE users (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email           text NOT NULL,
    name            text NOT NULL,
    password_hash   text NOT NULL,
    role            text NOT NULL DEFAULT 'learner'
                    CHECK (role IN ('learner', 'instructor', 'admin')),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
-- E-mail addresses are unique regardless of case: Ann@x.org and ann@x.org are one person.
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

-- One row per refresh token ever issued. A token is used once: refreshing revokes it and issues
-- its successor in the same family. Presenting a revoked token means it was stolen (or replayed),
-- so the whole family is revoked and the user must log in again.
CREATE TABLE refresh_tokens (
    jti             uuid PRIMARY KEY,
    family          uuid NOT NULL,
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issued_at       timestamptz NOT NULL DEFAULT now(),
    expires_at      timestamptz NOT NULL,
    revoked_at      timestamptz
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

CREATE TABLE courses (
    id                      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner_id                bigint NOT NULL REFERENCES users (id),
    title                   text NOT NULL,
    description             text NOT NULL DEFAULT '',
    completion_threshold    double precision NOT NULL DEFAULT 0.9
                            CHECK (completion_threshold > 0 AND completion_threshold <= 1),
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX courses_owner_idx ON courses (owner_id);

CREATE TABLE modules (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    course_id       bigint NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    title           text NOT NULL,
    position        integer NOT NULL DEFAULT 0
);
CREATE INDEX modules_course_idx ON modules (course_id, position);

CREATE TABLE contents (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    course_id       bigint NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    module_id       bigint REFERENCES modules (id) ON DELETE SET NULL,
    title           text NOT NULL,
    kind            text NOT NULL CHECK (kind IN ('video', 'text')),
    position        integer NOT NULL DEFAULT 0,
    body            text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX contents_course_idx ON contents (course_id, position);

CREATE TABLE enrollments (
    course_id       bigint NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    user_id         bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    enrolled_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (course_id, user_id)
);
CREATE INDEX enrollments_user_idx ON enrollments (user_id);
