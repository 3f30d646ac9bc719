//! The store contract: every case takes an empty, migrated store. Postgres
//! and the embedded store must both pass all of them.

pub mod bus;
pub mod cache;
pub mod messages;
pub mod presence;
pub mod rate_limit;
pub mod refresh_tokens;
pub mod sessions;
pub mod users;

/// Expands to one `#[tokio::test]` per contract case, each on a fresh store
/// from `$fresh` (an `async fn() -> TestStore`).
#[macro_export]
macro_rules! store_contract_tests {
    ($fresh:path) => {
        $crate::store_contract_tests!(@cases $fresh;
            users::register_then_find,
            users::email_unique_case_insensitively,
            users::soft_deleted_email_registers_again,
            users::concurrent_registrations_one_wins,
            users::profile_update_round_trips,
            users::password_update_sets_valid_after,
            users::soft_delete_cascades,
            users::updates_on_missing_user_are_not_found,
            refresh_tokens::insert_and_find_by_hash,
            refresh_tokens::rotate_spends_old_and_inserts_new,
            refresh_tokens::rotate_twice_conflicts,
            refresh_tokens::concurrent_rotations_one_wins,
            refresh_tokens::revoke_family_only_touches_family,
            refresh_tokens::revoke_all_keeps_excepted_family,
            refresh_tokens::family_liveness_follows_rotation_and_revocation,
            sessions::create_makes_owner_participant,
            sessions::non_participant_sees_nothing,
            sessions::list_empty,
            sessions::list_pages_by_activity_exact_page,
            sessions::list_cursor_at_last_item,
            sessions::message_moves_session_to_front,
            sessions::update_and_soft_delete,
            sessions::participants_add_remove,
            sessions::add_participant_unknown_user_or_session,
            sessions::owner_deletion_hides_sessions,
            messages::page_empty,
            messages::pages_walk_back_oldest_first,
            messages::exact_page_has_no_next_cursor,
            messages::recent_gives_the_latest_oldest_first,
            messages::pages_forward_from_cursor,
            messages::same_instant_ties_broken_by_id,
            messages::content_round_trips_exactly,
            messages::client_id_is_unique_per_session,
            messages::find_by_client_id_returns_reply,
            messages::reply_to_finds_the_latest_reply,
            messages::update_completes_reply,
            messages::fail_streaming_keeps_partial_text,
            messages::insert_into_deleted_session_not_found,
            messages::health_ping,
        );
    };
    (@cases $fresh:path; $($module:ident :: $case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let test_store = $fresh().await;
                $crate::contract::$module::$case(&test_store.store).await;
                drop(test_store);
            }
        )+
    };
}

/// Expands to one `#[tokio::test]` per rate-limiter contract case, each on a
/// fresh limiter and the clock it reads from `$fresh` (an
/// `async fn() -> (Arc<dyn RateLimiter>, Arc<ManualClock>)`).
#[macro_export]
macro_rules! rate_limit_contract_tests {
    ($fresh:path) => {
        $crate::rate_limit_contract_tests!(@cases $fresh;
            burst_then_refused,
            peek_counts_nothing,
            new_window_starts_from_zero,
            keys_are_independent,
            window_lengths_count_apart,
            reset_after_shrinks_within_window,
            concurrent_hits_allow_exactly_limit,
            fifteen_minute_window,
        );
    };
    (@cases $fresh:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (limiter, clock) = $fresh().await;
                $crate::contract::rate_limit::$case(&limiter, &clock).await;
            }
        )+
    };
}

/// Expands to one `#[tokio::test]` per cache contract case, each on a fresh
/// cache from `$fresh` (an `async fn() -> Arc<dyn Cache>`; for a shared
/// Redis, one in a namespace of its own).
#[macro_export]
macro_rules! cache_contract_tests {
    ($fresh:path) => {
        $crate::cache_contract_tests!(@cases $fresh;
            answers_ping,
            unknown_key_misses,
            set_then_get_returns_exact_bytes,
            overwrite_replaces,
            delete_removes_listed_keys,
            entries_expire_after_their_ttl,
            zero_ttl_stores_nothing,
            keys_are_independent,
            large_value_round_trips,
        );
    };
    (@cases $fresh:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let cache = $fresh().await;
                $crate::contract::cache::$case(&cache).await;
            }
        )+
    };
}

/// Expands to one `#[tokio::test]` per event-bus contract case, each on the
/// two handles from `$fresh` (an
/// `async fn() -> (Arc<dyn EventBus>, Arc<dyn EventBus>)`, see the module).
#[macro_export]
macro_rules! event_bus_contract_tests {
    ($fresh:path) => {
        $crate::event_bus_contract_tests!(@cases $fresh;
            answers_ping,
            publication_reaches_other_handle_in_order,
            every_subscriber_gets_everything,
            publishers_keep_their_own_order,
            topics_are_independent,
            nothing_from_before_subscribe,
            dropped_subscription_stops_delivery,
            publish_without_subscribers_succeeds,
            built_payloads_reach_subscribers,
            payloads_round_trip_exactly,
        );
    };
    (@cases $fresh:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (a, b) = $fresh().await;
                $crate::contract::bus::$case(&a, &b).await;
            }
        )+
    };
}

/// Expands to one `#[tokio::test]` per reply-log contract case, each on the
/// two handles from `$fresh` (an
/// `async fn() -> (Arc<dyn ReplyLog>, Arc<dyn ReplyLog>)`: two instances on
/// one namespace, or in process the same log twice).
#[macro_export]
macro_rules! reply_log_contract_tests {
    ($fresh:path) => {
        $crate::reply_log_contract_tests!(@cases $fresh;
            read_after_returns_the_rest,
            unknown_reply_is_empty,
            logs_share_chunks,
            repeated_seq_is_ignored_and_gap_refused,
            replies_are_independent,
            finish_keeps_chunks_for_grace_only,
            chunks_round_trip_exactly,
        );
    };
    (@cases $fresh:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (a, b) = $fresh().await;
                $crate::contract::bus::$case(&a, &b).await;
            }
        )+
    };
}

/// Expands to one `#[tokio::test]` per presence contract case, each on a
/// fresh registry and the clock it reads from `$fresh` (an
/// `async fn() -> (Arc<dyn PresenceRegistry>, Arc<ManualClock>)`).
#[macro_export]
macro_rules! presence_contract_tests {
    ($fresh:path) => {
        $crate::presence_contract_tests!(@cases $fresh;
            first_connection_arrives_last_leaves,
            entering_twice_is_one_hold,
            people_and_sessions_count_apart,
            leaving_unknown_connection_says_gone,
            unrenewed_lease_lapses,
            renewal_keeps_and_restores,
            renewal_covers_many,
            concurrent_tabs_arrive_once,
        );
    };
    (@cases $fresh:path; $($case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let (registry, clock) = $fresh().await;
                $crate::contract::presence::$case(&registry, &clock).await;
            }
        )+
    };
}
