use specgen_domain::{Cursor, MessageError, MessageStatus, PageLimit, SessionId, Usage, User};
use specgen_ports::{PageRequest, RecentMessage, RepoError, Store};
use time::Duration;

use crate::fixtures;

fn limit(n: i64) -> PageLimit {
    PageLimit::new(n).unwrap()
}

/// A user, a session they own, and `n` messages one second apart.
async fn chat(s: &Store, n: usize) -> (User, SessionId, Vec<specgen_domain::Message>) {
    let (user, profile) = fixtures::user();
    s.users.register(&user, &profile).await.unwrap();
    let session = fixtures::session(user.id);
    s.sessions.create(&session).await.unwrap();
    let base = fixtures::now() - Duration::hours(1);
    let mut made = Vec::new();
    for i in 0..n {
        let m = fixtures::user_message_at(session.id, user.id, &format!("m{i}"), base + Duration::seconds(i as i64));
        s.messages.insert(&m).await.unwrap();
        made.push(m);
    }
    (user, session.id, made)
}

fn ids(messages: &[specgen_domain::Message]) -> Vec<specgen_domain::MessageId> {
    messages.iter().map(|m| m.id).collect()
}

pub async fn page_empty(s: &Store) {
    let (_, session, _) = chat(s, 0).await;
    let page = s.messages.page(session, PageRequest::first(limit(50))).await.unwrap();
    assert!(page.items.is_empty());
    assert_eq!(page.next_cursor, None);
    let forward = s.messages.page(session, PageRequest::newer_than(None, limit(50))).await.unwrap();
    assert!(forward.items.is_empty());
}

pub async fn pages_walk_back_oldest_first(s: &Store) {
    let (_, session, made) = chat(s, 5).await;
    let newest = s.messages.page(session, PageRequest::first(limit(2))).await.unwrap();
    assert_eq!(ids(&newest.items), ids(&made[3..5]), "newest page, oldest first within it");
    let middle =
        s.messages.page(session, PageRequest::older_than(newest.next_cursor.unwrap(), limit(2))).await.unwrap();
    assert_eq!(ids(&middle.items), ids(&made[1..3]));
    let last = s.messages.page(session, PageRequest::older_than(middle.next_cursor.unwrap(), limit(2))).await.unwrap();
    assert_eq!(ids(&last.items), ids(&made[0..1]));
    assert_eq!(last.next_cursor, None);
}

/// The context read: a session's latest messages, oldest first, each with
/// its role, status and exact text; no other session's; all of them when
/// there are fewer than asked.
pub async fn recent_gives_the_latest_oldest_first(s: &Store) {
    let (_, session, made) = chat(s, 4).await;
    let mut reply = fixtures::streaming_reply(&made[3], "half \u{ab}an\u{bb} answer\n");
    reply.status = MessageStatus::Failed;
    s.messages.insert(&reply).await.unwrap();
    let (_, other, _) = chat(s, 2).await;

    let recent = s.messages.recent(session, limit(3)).await.unwrap();
    let expected: Vec<RecentMessage> = [&made[2], &made[3], &reply].into_iter().map(RecentMessage::from).collect();
    assert_eq!(recent, expected);
    let all = s.messages.recent(session, limit(50)).await.unwrap();
    let mut every = ids(&made);
    every.push(reply.id);
    assert_eq!(all.iter().map(|m| m.id).collect::<Vec<_>>(), every);
    assert_eq!(s.messages.recent(other, limit(50)).await.unwrap().len(), 2);
    let (_, empty, _) = chat(s, 0).await;
    assert!(s.messages.recent(empty, limit(10)).await.unwrap().is_empty());
}

pub async fn exact_page_has_no_next_cursor(s: &Store) {
    let (_, session, made) = chat(s, 3).await;
    let page = s.messages.page(session, PageRequest::first(limit(3))).await.unwrap();
    assert_eq!(ids(&page.items), ids(&made));
    assert_eq!(page.next_cursor, None);
    // A cursor at the oldest message: nothing older.
    let at_last = Cursor::new(made[0].created_at, made[0].id.as_uuid());
    let page = s.messages.page(session, PageRequest::older_than(at_last, limit(3))).await.unwrap();
    assert!(page.items.is_empty());
    assert_eq!(page.next_cursor, None);
}

pub async fn pages_forward_from_cursor(s: &Store) {
    let (_, session, made) = chat(s, 5).await;
    let from = Cursor::new(made[1].created_at, made[1].id.as_uuid());
    let page = s.messages.page(session, PageRequest::newer_than(Some(from), limit(2))).await.unwrap();
    assert_eq!(ids(&page.items), ids(&made[2..4]));
    let rest = s.messages.page(session, PageRequest::newer_than(page.next_cursor, limit(2))).await.unwrap();
    assert_eq!(ids(&rest.items), ids(&made[4..5]));
    assert_eq!(rest.next_cursor, None);
    let at_newest = Cursor::new(made[4].created_at, made[4].id.as_uuid());
    let none = s.messages.page(session, PageRequest::newer_than(Some(at_newest), limit(2))).await.unwrap();
    assert!(none.items.is_empty());
}

pub async fn same_instant_ties_broken_by_id(s: &Store) {
    let (user, session, _) = chat(s, 0).await;
    let at = fixtures::now();
    let mut made = Vec::new();
    for i in 0..4 {
        let m = fixtures::user_message_at(session, user.id, &format!("tie{i}"), at);
        s.messages.insert(&m).await.unwrap();
        made.push(m);
    }
    made.sort_by_key(|m| m.id);
    let first = s.messages.page(session, PageRequest::first(limit(2))).await.unwrap();
    let second = s.messages.page(session, PageRequest::older_than(first.next_cursor.unwrap(), limit(2))).await.unwrap();
    assert_eq!(ids(&first.items), ids(&made[2..4]));
    assert_eq!(ids(&second.items), ids(&made[0..2]));
}

pub async fn content_round_trips_exactly(s: &Store) {
    let (user, session, _) = chat(s, 0).await;
    let raw = "  a < b && <div onclick=\"x\">é 😀\n\t'quotes' \\ \r\n ";
    let m = fixtures::user_message(session, user.id, raw);
    s.messages.insert(&m).await.unwrap();
    let found = s.messages.find(session, m.id).await.unwrap().unwrap();
    assert_eq!(found, m);
    assert_eq!(found.content, raw);
    assert_eq!(s.messages.find(SessionId::new_v7(), m.id).await.unwrap(), None, "scoped to its session");
}

pub async fn client_id_is_unique_per_session(s: &Store) {
    let (user, session, _) = chat(s, 0).await;
    let first = fixtures::with_client_id(fixtures::user_message(session, user.id, "once"), "key-1");
    s.messages.insert(&first).await.unwrap();
    let again = fixtures::with_client_id(fixtures::user_message(session, user.id, "twice"), "key-1");
    assert!(matches!(s.messages.insert(&again).await, Err(RepoError::Conflict(_))));
    assert_eq!(s.messages.find(session, again.id).await.unwrap(), None);

    // The same key in another session is another message.
    let other = fixtures::session(user.id);
    s.sessions.create(&other).await.unwrap();
    let elsewhere = fixtures::with_client_id(fixtures::user_message(other.id, user.id, "once"), "key-1");
    s.messages.insert(&elsewhere).await.unwrap();
}

pub async fn find_by_client_id_returns_reply(s: &Store) {
    let (user, session, _) = chat(s, 0).await;
    let asked = fixtures::with_client_id(fixtures::user_message(session, user.id, "hi"), "k");
    s.messages.insert(&asked).await.unwrap();
    let key = asked.client_message_id.clone().unwrap();
    assert_eq!(s.messages.find_by_client_id(session, &key).await.unwrap(), Some((asked.clone(), None)));
    let reply = fixtures::streaming_reply(&asked, "");
    s.messages.insert(&reply).await.unwrap();
    assert_eq!(s.messages.find_by_client_id(session, &key).await.unwrap(), Some((asked, Some(reply))));
    let unknown = specgen_domain::ClientMessageId::parse("nope").unwrap();
    assert_eq!(s.messages.find_by_client_id(session, &unknown).await.unwrap(), None);
}

pub async fn reply_to_finds_the_latest_reply(s: &Store) {
    let (user, session, _) = chat(s, 0).await;
    let asked = fixtures::user_message(session, user.id, "hi");
    s.messages.insert(&asked).await.unwrap();
    assert_eq!(s.messages.reply_to(session, asked.id).await.unwrap(), None);
    let reply = fixtures::streaming_reply(&asked, "");
    s.messages.insert(&reply).await.unwrap();
    assert_eq!(s.messages.reply_to(session, asked.id).await.unwrap(), Some(reply.clone()));
    // Not the reply to another message, nor one in another session.
    let other = fixtures::user_message(session, user.id, "again");
    s.messages.insert(&other).await.unwrap();
    assert_eq!(s.messages.reply_to(session, other.id).await.unwrap(), None);
    let (_, elsewhere, _) = chat(s, 1).await;
    assert_eq!(s.messages.reply_to(elsewhere, asked.id).await.unwrap(), None);
}

pub async fn update_completes_reply(s: &Store) {
    let (user, session, _) = chat(s, 0).await;
    let asked = fixtures::user_message(session, user.id, "hi");
    s.messages.insert(&asked).await.unwrap();
    let mut reply = fixtures::streaming_reply(&asked, "Hel");
    s.messages.insert(&reply).await.unwrap();
    reply.content = "Hello there".into();
    reply.status = MessageStatus::Complete;
    reply.usage = Some(Usage { input_tokens: 12, output_tokens: 3 });
    reply.latency_ms = Some(842);
    reply.provider = Some("claude".into());
    reply.model = Some("claude-sonnet".into());
    reply.updated_at = fixtures::now();
    s.messages.update(&reply).await.unwrap();
    assert_eq!(s.messages.find(session, reply.id).await.unwrap(), Some(reply.clone()));

    let ghost = fixtures::streaming_reply(&asked, "");
    assert!(matches!(s.messages.update(&ghost).await, Err(RepoError::NotFound)));
}

pub async fn fail_streaming_keeps_partial_text(s: &Store) {
    let (user, session, _) = chat(s, 0).await;
    let asked = fixtures::user_message(session, user.id, "hi");
    s.messages.insert(&asked).await.unwrap();
    let now = fixtures::now();
    // One reply last written two minutes ago (its producer died), one now.
    let mut cut = fixtures::streaming_reply(&asked, "partial ans");
    cut.updated_at = now - time::Duration::minutes(2);
    s.messages.insert(&cut).await.unwrap();
    let live = fixtures::streaming_reply(&asked, "still going");
    s.messages.insert(&live).await.unwrap();
    let error = MessageError { code: "INTERRUPTED".into(), message: "the server restarted".into() };
    let a_minute_ago = now - time::Duration::minutes(1);
    let failed = s.messages.fail_streaming(&error, a_minute_ago, now).await.unwrap();
    let found = s.messages.find(session, cut.id).await.unwrap().unwrap();
    assert_eq!(failed, std::slice::from_ref(&found), "only the stale one, as now stored");
    assert_eq!(found.status, MessageStatus::Failed);
    assert_eq!(found.content, "partial ans");
    assert_eq!(found.error, Some(error.clone()));
    assert_eq!(found.updated_at, now);
    assert_eq!(s.messages.find(session, live.id).await.unwrap().unwrap().status, MessageStatus::Streaming);
    assert_eq!(s.messages.find(session, asked.id).await.unwrap(), Some(asked), "user message untouched");
    assert_eq!(s.messages.fail_streaming(&error, a_minute_ago, now).await.unwrap(), []);
    // Everything still streaming, as a single instance does at start.
    let later = now + time::Duration::seconds(1);
    let failed = s.messages.fail_streaming(&error, later, later).await.unwrap();
    assert_eq!(failed.iter().map(|m| (m.id, m.status)).collect::<Vec<_>>(), [(live.id, MessageStatus::Failed)]);
    assert_eq!(s.messages.find(session, live.id).await.unwrap().unwrap().content, "still going");
}

pub async fn insert_into_deleted_session_not_found(s: &Store) {
    let (user, session, _) = chat(s, 1).await;
    s.sessions.soft_delete(session, fixtures::now()).await.unwrap();
    assert!(matches!(
        s.messages.insert(&fixtures::user_message(session, user.id, "late")).await,
        Err(RepoError::NotFound)
    ));
    assert!(matches!(
        s.messages.insert(&fixtures::user_message(SessionId::new_v7(), user.id, "nowhere")).await,
        Err(RepoError::NotFound)
    ));
}

pub async fn health_ping(s: &Store) {
    s.health.ping().await.unwrap();
}
