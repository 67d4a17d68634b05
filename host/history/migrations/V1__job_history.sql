-- jobhost's job history: one row per finished job, written by the archive drain
-- (jobhost-history), read by GetJob/GET /v1/jobs/{id} after Redis forgot the job and by
-- SearchHistory / GET /v1/history / `jobctl history`.
CREATE TABLE job_history (
    id               text        PRIMARY KEY,
    name             text        NOT NULL DEFAULT '',
    job_type         text        NOT NULL,
    state            text        NOT NULL,
    spec             text        NOT NULL DEFAULT '',
    labels           jsonb       NOT NULL DEFAULT '{}',
    priority         integer     NOT NULL DEFAULT 0,
    attempts         integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL DEFAULT 1,
    timeout_ms       bigint,
    backoff_base_ms  bigint      NOT NULL DEFAULT 0,
    backoff_max_ms   bigint      NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL,
    finished_at      timestamptz NOT NULL,
    -- The node of the last attempt.
    node             text        NOT NULL DEFAULT '',
    output           text,
    reason           text,
    cancel_requested boolean     NOT NULL DEFAULT false,
    submitted_by     text        NOT NULL DEFAULT '',
    cancelled_by     text        NOT NULL DEFAULT '',
    -- Every attempt: [{attempt, node, started_ms, ended_ms, outcome, reason}].
    attempt_history  jsonb       NOT NULL DEFAULT '[]',
    -- The first log lines (history.max_log_lines, history.max_log_bytes):
    -- [{attempt, level, message}]; log_lines counts the job's lines in all.
    log              jsonb       NOT NULL DEFAULT '[]',
    log_lines        bigint      NOT NULL DEFAULT 0,
    archived_at      timestamptz NOT NULL DEFAULT now()
);

-- Newest first, the order every search pages in (keyset: finished_at, id).
CREATE INDEX job_history_finished ON job_history (finished_at DESC, id DESC);
CREATE INDEX job_history_type ON job_history (job_type, finished_at DESC, id DESC);
CREATE INDEX job_history_state ON job_history (state, finished_at DESC, id DESC);
CREATE INDEX job_history_submitted_by ON job_history (submitted_by, finished_at DESC, id DESC);
CREATE INDEX job_history_labels ON job_history USING gin (labels jsonb_path_ops);
