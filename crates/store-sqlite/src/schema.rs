//! Diesel table definitions matching `migrations/sqlite`. Ids are canonical
//! (lowercase, hyphenated) UUID strings, instants are microseconds since the
//! Unix epoch. Token counts are declared `integer` in SQL but read as BigInt:
//! SQLite integers are 64-bit, and a u32 does not fit an i32.

diesel::table! {
    users (id) {
        id -> Text,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        tokens_valid_after -> Nullable<BigInt>,
        deleted_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    profiles (user_id) {
        user_id -> Text,
        display_name -> Text,
        bio -> Text,
        timezone -> Text,
        preferences -> Text,
        updated_at -> BigInt,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Text,
        user_id -> Text,
        family_id -> Text,
        token_hash -> Text,
        device_id -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
        spent_at -> Nullable<BigInt>,
        revoked_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    chat_sessions (id) {
        id -> Text,
        title -> Text,
        owner_id -> Text,
        system_prompt -> Nullable<Text>,
        provider -> Nullable<Text>,
        model -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
        last_message_at -> Nullable<BigInt>,
        last_activity_at -> BigInt,
        deleted_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    session_participants (session_id, user_id) {
        session_id -> Text,
        user_id -> Text,
        role -> Text,
        joined_at -> BigInt,
    }
}

diesel::table! {
    messages (id) {
        id -> Text,
        session_id -> Text,
        sender_id -> Nullable<Text>,
        role -> Text,
        content -> Text,
        status -> Text,
        provider -> Nullable<Text>,
        model -> Nullable<Text>,
        input_tokens -> Nullable<BigInt>,
        output_tokens -> Nullable<BigInt>,
        latency_ms -> Nullable<BigInt>,
        client_message_id -> Nullable<Text>,
        reply_to -> Nullable<Text>,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::joinable!(profiles -> users (user_id));
diesel::joinable!(refresh_tokens -> users (user_id));
diesel::joinable!(chat_sessions -> users (owner_id));
diesel::joinable!(session_participants -> chat_sessions (session_id));
diesel::joinable!(session_participants -> users (user_id));
diesel::joinable!(messages -> chat_sessions (session_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    profiles,
    refresh_tokens,
    chat_sessions,
    session_participants,
    messages,
);
