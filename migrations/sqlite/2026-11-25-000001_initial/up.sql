-- Accounts, sessions and messages. Ids are UUIDv7 strings; instants are
-- microseconds since the Unix epoch (exact round trips, ordered as integers).

CREATE TABLE users (
    id                 text PRIMARY KEY,
    email              text NOT NULL,
    name               text NOT NULL,
    password_hash      text NOT NULL,
    created_at         bigint NOT NULL,
    updated_at         bigint NOT NULL,
    tokens_valid_after bigint,
    deleted_at         bigint
);
-- One live account per email; a soft-deleted email may register again.
CREATE UNIQUE INDEX users_email_live_key ON users (email) WHERE deleted_at IS NULL;

CREATE TABLE profiles (
    user_id      text PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    display_name text NOT NULL,
    bio          text NOT NULL DEFAULT '',
    timezone     text NOT NULL DEFAULT 'UTC',
    preferences  text NOT NULL DEFAULT '{}',
    updated_at   bigint NOT NULL
);

CREATE TABLE refresh_tokens (
    id         text PRIMARY KEY,
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family_id  text NOT NULL,
    token_hash text NOT NULL UNIQUE,
    device_id  text,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL,
    spent_at   bigint,
    revoked_at bigint
);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family_id);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

CREATE TABLE chat_sessions (
    id               text PRIMARY KEY,
    title            text NOT NULL,
    owner_id         text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    system_prompt    text,
    provider         text,
    model            text,
    created_at       bigint NOT NULL,
    updated_at       bigint NOT NULL,
    last_message_at  bigint,
    -- last_message_at, or created_at before the first message: the list order.
    last_activity_at bigint NOT NULL,
    deleted_at       bigint
);
CREATE INDEX chat_sessions_owner_idx ON chat_sessions (owner_id);
CREATE INDEX chat_sessions_activity_idx ON chat_sessions (last_activity_at DESC, id DESC) WHERE deleted_at IS NULL;

CREATE TABLE session_participants (
    session_id text NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    user_id    text NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('owner', 'member')),
    joined_at  bigint NOT NULL,
    PRIMARY KEY (session_id, user_id)
);
CREATE INDEX session_participants_user_idx ON session_participants (user_id, session_id);

CREATE TABLE messages (
    id                text PRIMARY KEY,
    session_id        text NOT NULL REFERENCES chat_sessions (id) ON DELETE CASCADE,
    sender_id         text REFERENCES users (id) ON DELETE SET NULL,
    role              text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content           text NOT NULL,
    status            text NOT NULL CHECK (status IN ('complete', 'streaming', 'failed', 'cancelled')),
    provider          text,
    model             text,
    input_tokens      integer,
    output_tokens     integer,
    latency_ms        bigint,
    client_message_id text,
    reply_to          text REFERENCES messages (id) ON DELETE SET NULL,
    error_code        text,
    error_message     text,
    created_at        bigint NOT NULL,
    updated_at        bigint NOT NULL
);
CREATE INDEX messages_session_created_idx ON messages (session_id, created_at DESC, id DESC);
CREATE INDEX messages_created_idx ON messages (created_at DESC);
CREATE UNIQUE INDEX messages_client_id_key ON messages (session_id, client_message_id) WHERE client_message_id IS NOT NULL;
CREATE INDEX messages_reply_to_idx ON messages (reply_to) WHERE reply_to IS NOT NULL;
CREATE INDEX messages_streaming_idx ON messages (id) WHERE status = 'streaming';
