CREATE INDEX messages_created_idx ON messages (created_at DESC);
