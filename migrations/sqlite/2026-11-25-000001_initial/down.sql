DROP TABLE messages;
DROP TABLE session_participants;
DROP TABLE chat_sessions;
DROP TABLE refresh_tokens;
DROP TABLE profiles;
DROP TABLE users;
