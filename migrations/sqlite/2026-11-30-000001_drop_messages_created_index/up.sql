-- Nothing reads messages by creation time across sessions: every query
-- filters by session (messages_session_created_idx). The index only cost
-- one more page write in every message commit.
DROP INDEX messages_created_idx;
