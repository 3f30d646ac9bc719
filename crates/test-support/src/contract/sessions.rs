use specgen_domain::{
    ModelName, PageLimit, ParticipantRole, ProviderName, SessionId, SessionTitle, SystemPrompt, User,
};
use specgen_ports::{PageRequest, RepoError, Store};
use time::Duration;

use crate::fixtures;

async fn registered(s: &Store) -> User {
    let (user, profile) = fixtures::user();
    s.users.register(&user, &profile).await.unwrap();
    user
}

fn limit(n: i64) -> PageLimit {
    PageLimit::new(n).unwrap()
}

/// Creates `n` sessions owned by `owner`, each one second more recent than the last.
async fn sessions_in_order(s: &Store, owner: &User, n: usize) -> Vec<specgen_domain::ChatSession> {
    let base = fixtures::now() - Duration::hours(1);
    let mut made = Vec::new();
    for i in 0..n {
        let mut session = fixtures::session(owner.id);
        session.created_at = base + Duration::seconds(i as i64);
        session.updated_at = session.created_at;
        s.sessions.create(&session).await.unwrap();
        made.push(session);
    }
    made
}

pub async fn create_makes_owner_participant(s: &Store) {
    let owner = registered(s).await;
    let mut session = fixtures::session(owner.id);
    session.system_prompt = Some(SystemPrompt::parse("Be brief.").unwrap());
    session.provider = Some(ProviderName::Demo);
    session.model = Some(ModelName::parse("demo-1").unwrap());
    s.sessions.create(&session).await.unwrap();
    let found = s.sessions.find_for_participant(session.id, owner.id).await.unwrap();
    assert_eq!(found, Some((session.clone(), ParticipantRole::Owner)));
    let participants = s.sessions.participants(session.id).await.unwrap();
    assert_eq!(participants.len(), 1);
    assert_eq!(participants[0].user_id, owner.id);
    assert_eq!(participants[0].name, owner.name);
    assert_eq!(participants[0].role, ParticipantRole::Owner);
}

pub async fn non_participant_sees_nothing(s: &Store) {
    let owner = registered(s).await;
    let stranger = registered(s).await;
    let session = fixtures::session(owner.id);
    s.sessions.create(&session).await.unwrap();
    assert_eq!(s.sessions.find_for_participant(session.id, stranger.id).await.unwrap(), None);
    assert_eq!(s.sessions.find_for_participant(SessionId::new_v7(), owner.id).await.unwrap(), None);
    let page = s.sessions.list_for_user(stranger.id, PageRequest::first(limit(20))).await.unwrap();
    assert!(page.items.is_empty());
}

pub async fn list_empty(s: &Store) {
    let user = registered(s).await;
    let page = s.sessions.list_for_user(user.id, PageRequest::first(limit(20))).await.unwrap();
    assert!(page.items.is_empty());
    assert_eq!(page.next_cursor, None);
}

pub async fn list_pages_by_activity_exact_page(s: &Store) {
    let owner = registered(s).await;
    let made = sessions_in_order(s, &owner, 4).await;
    let newest_first: Vec<_> = made.iter().rev().map(|x| x.id).collect();

    // Exactly one full page: no cursor to a page that would be empty.
    let page = s.sessions.list_for_user(owner.id, PageRequest::first(limit(4))).await.unwrap();
    assert_eq!(page.items.iter().map(|x| x.id).collect::<Vec<_>>(), newest_first);
    assert_eq!(page.next_cursor, None);

    let first = s.sessions.list_for_user(owner.id, PageRequest::first(limit(3))).await.unwrap();
    assert_eq!(first.items.iter().map(|x| x.id).collect::<Vec<_>>(), newest_first[..3]);
    let cursor = first.next_cursor.expect("one more session");
    let second = s.sessions.list_for_user(owner.id, PageRequest::older_than(cursor, limit(3))).await.unwrap();
    assert_eq!(second.items.iter().map(|x| x.id).collect::<Vec<_>>(), newest_first[3..]);
    assert_eq!(second.next_cursor, None);
}

pub async fn list_cursor_at_last_item(s: &Store) {
    let owner = registered(s).await;
    let made = sessions_in_order(s, &owner, 3).await;
    let oldest = &made[0];
    let cursor = specgen_domain::Cursor::new(oldest.last_activity_at(), oldest.id.as_uuid());
    let page = s.sessions.list_for_user(owner.id, PageRequest::older_than(cursor, limit(10))).await.unwrap();
    assert!(page.items.is_empty());
    assert_eq!(page.next_cursor, None);
}

pub async fn message_moves_session_to_front(s: &Store) {
    let owner = registered(s).await;
    let made = sessions_in_order(s, &owner, 3).await;
    let oldest = &made[0];
    let message = fixtures::user_message(oldest.id, owner.id, "bump");
    s.messages.insert(&message).await.unwrap();

    let page = s.sessions.list_for_user(owner.id, PageRequest::first(limit(10))).await.unwrap();
    assert_eq!(page.items[0].id, oldest.id);
    assert_eq!(page.items[0].last_message_at, Some(message.created_at));
    assert_eq!(page.items[0].last_activity_at(), message.created_at);
}

pub async fn update_and_soft_delete(s: &Store) {
    let owner = registered(s).await;
    let mut session = fixtures::session(owner.id);
    s.sessions.create(&session).await.unwrap();
    session.title = SessionTitle::parse("Renamed").unwrap();
    session.system_prompt = Some(SystemPrompt::parse("You are terse.").unwrap());
    session.provider = Some(ProviderName::Claude);
    session.model = Some(ModelName::parse("claude-sonnet").unwrap());
    session.updated_at = fixtures::now();
    s.sessions.update(&session).await.unwrap();
    assert_eq!(
        s.sessions.find_for_participant(session.id, owner.id).await.unwrap().map(|(x, _)| x),
        Some(session.clone())
    );

    s.sessions.soft_delete(session.id, fixtures::now()).await.unwrap();
    assert_eq!(s.sessions.find_for_participant(session.id, owner.id).await.unwrap(), None);
    assert!(s.sessions.list_for_user(owner.id, PageRequest::first(limit(10))).await.unwrap().items.is_empty());
    assert!(matches!(s.sessions.soft_delete(session.id, fixtures::now()).await, Err(RepoError::NotFound)));
    assert!(matches!(s.sessions.update(&session).await, Err(RepoError::NotFound)));
}

pub async fn participants_add_remove(s: &Store) {
    let owner = registered(s).await;
    let member = registered(s).await;
    let session = fixtures::session(owner.id);
    s.sessions.create(&session).await.unwrap();

    s.sessions.add_participant(&fixtures::member(session.id, member.id)).await.unwrap();
    assert!(matches!(
        s.sessions.add_participant(&fixtures::member(session.id, member.id)).await,
        Err(RepoError::Conflict(_))
    ));
    let found = s.sessions.find_for_participant(session.id, member.id).await.unwrap();
    assert_eq!(found.map(|(_, role)| role), Some(ParticipantRole::Member));
    let listed = s.sessions.list_for_user(member.id, PageRequest::first(limit(10))).await.unwrap();
    assert_eq!(listed.items.iter().map(|x| x.id).collect::<Vec<_>>(), vec![session.id]);
    let roles: Vec<_> =
        s.sessions.participants(session.id).await.unwrap().iter().map(|p| (p.user_id, p.role)).collect();
    assert_eq!(roles, vec![(owner.id, ParticipantRole::Owner), (member.id, ParticipantRole::Member)]);

    s.sessions.remove_participant(session.id, member.id).await.unwrap();
    assert_eq!(s.sessions.find_for_participant(session.id, member.id).await.unwrap(), None);
    assert!(matches!(s.sessions.remove_participant(session.id, member.id).await, Err(RepoError::NotFound)));
    assert_eq!(s.sessions.participant_ids(session.id).await.unwrap(), vec![owner.id]);
}

pub async fn add_participant_unknown_user_or_session(s: &Store) {
    let owner = registered(s).await;
    let session = fixtures::session(owner.id);
    s.sessions.create(&session).await.unwrap();
    let (ghost, _) = fixtures::user();
    assert!(matches!(
        s.sessions.add_participant(&fixtures::member(session.id, ghost.id)).await,
        Err(RepoError::NotFound)
    ));
    let member = registered(s).await;
    assert!(matches!(
        s.sessions.add_participant(&fixtures::member(SessionId::new_v7(), member.id)).await,
        Err(RepoError::NotFound)
    ));
}

pub async fn owner_deletion_hides_sessions(s: &Store) {
    // Soft deletion is the only deletion the ports offer; it must take the
    // user's sessions and messages out of every view.
    let owner = registered(s).await;
    let member = registered(s).await;
    let session = fixtures::session(owner.id);
    s.sessions.create(&session).await.unwrap();
    s.sessions.add_participant(&fixtures::member(session.id, member.id)).await.unwrap();
    s.messages.insert(&fixtures::user_message(session.id, owner.id, "hello")).await.unwrap();
    s.users.soft_delete(owner.id, fixtures::now()).await.unwrap();
    let page = s.sessions.list_for_user(member.id, PageRequest::first(limit(10))).await.unwrap();
    assert!(page.items.is_empty(), "a deleted owner's sessions disappear for members too");
    assert!(matches!(
        s.messages.insert(&fixtures::user_message(session.id, member.id, "anyone?")).await,
        Err(RepoError::NotFound)
    ));
}
