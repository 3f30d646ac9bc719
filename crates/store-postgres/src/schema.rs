//! Diesel's view of `migrations/postgres`. Kept by hand: it must match the
//! SQL exactly (the contract suite exercises every column).

diesel::table! {
    users (id) {
        id -> Uuid,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        tokens_valid_after -> Nullable<Timestamptz>,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    profiles (user_id) {
        user_id -> Uuid,
        display_name -> Text,
        bio -> Text,
        timezone -> Text,
        preferences -> Jsonb,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    refresh_tokens (id) {
        id -> Uuid,
        user_id -> Uuid,
        family_id -> Uuid,
        token_hash -> Text,
        device_id -> Nullable<Text>,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        spent_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    chat_sessions (id) {
        id -> Uuid,
        title -> Text,
        owner_id -> Uuid,
        system_prompt -> Nullable<Text>,
        provider -> Nullable<Text>,
        model -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        last_message_at -> Nullable<Timestamptz>,
        last_activity_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    session_participants (session_id, user_id) {
        session_id -> Uuid,
        user_id -> Uuid,
        role -> Text,
        joined_at -> Timestamptz,
    }
}

diesel::table! {
    messages (id) {
        id -> Uuid,
        session_id -> Uuid,
        sender_id -> Nullable<Uuid>,
        role -> Text,
        content -> Text,
        status -> Text,
        provider -> Nullable<Text>,
        model -> Nullable<Text>,
        input_tokens -> Nullable<Int4>,
        output_tokens -> Nullable<Int4>,
        latency_ms -> Nullable<Int8>,
        client_message_id -> Nullable<Text>,
        reply_to -> Nullable<Uuid>,
        error_code -> Nullable<Text>,
        error_message -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::joinable!(profiles -> users (user_id));
diesel::joinable!(refresh_tokens -> users (user_id));
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
