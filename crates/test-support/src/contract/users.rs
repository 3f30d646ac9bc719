use specgen_domain::{Bio, PersonName, Preferences, Timezone};
use specgen_ports::{RepoError, Store};
use time::Duration;

use crate::fixtures;

pub async fn register_then_find(s: &Store) {
    let (user, profile) = fixtures::user();
    s.users.register(&user, &profile).await.unwrap();
    assert_eq!(s.users.find_by_email(&user.email).await.unwrap(), Some(user.clone()));
    assert_eq!(s.users.find_by_id(user.id).await.unwrap(), Some(user.clone()));
    assert_eq!(s.users.profile(user.id).await.unwrap(), Some(profile));
    assert_eq!(s.users.find_by_email(&fixtures::email("nobody")).await.unwrap(), None);
}

pub async fn email_unique_case_insensitively(s: &Store) {
    let (first, profile) = fixtures::user_with_email("Ada@Example.com");
    s.users.register(&first, &profile).await.unwrap();
    let (second, profile) = fixtures::user_with_email("ADA@example.COM");
    assert!(matches!(s.users.register(&second, &profile).await, Err(RepoError::Conflict(_))));
    // Nothing of the refused registration was kept, profile included.
    assert_eq!(s.users.find_by_id(second.id).await.unwrap(), None);
    assert_eq!(s.users.profile(second.id).await.unwrap(), None);
}

pub async fn soft_deleted_email_registers_again(s: &Store) {
    let (old, profile) = fixtures::user_with_email("again@example.com");
    s.users.register(&old, &profile).await.unwrap();
    s.users.soft_delete(old.id, fixtures::now()).await.unwrap();
    assert_eq!(s.users.find_by_email(&old.email).await.unwrap(), None);
    assert_eq!(s.users.find_by_id(old.id).await.unwrap(), None);

    let (new, profile) = fixtures::user_with_email("again@example.com");
    s.users.register(&new, &profile).await.unwrap();
    assert_eq!(s.users.find_by_email(&new.email).await.unwrap().map(|u| u.id), Some(new.id));
    assert!(matches!(s.users.soft_delete(old.id, fixtures::now()).await, Err(RepoError::NotFound)));
}

pub async fn concurrent_registrations_one_wins(s: &Store) {
    let attempts = (0..8).map(|_| {
        let users = s.users.clone();
        tokio::spawn(async move {
            let (user, profile) = fixtures::user_with_email("race@example.com");
            users.register(&user, &profile).await
        })
    });
    let results = futures::future::join_all(attempts).await;
    let won = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
    let conflicted = results.iter().filter(|r| matches!(r, Ok(Err(RepoError::Conflict(_))))).count();
    assert_eq!((won, conflicted), (1, 7), "{results:?}");
}

pub async fn profile_update_round_trips(s: &Store) {
    let (user, mut profile) = fixtures::user();
    s.users.register(&user, &profile).await.unwrap();
    profile.display_name = PersonName::parse("Ada L.").unwrap();
    profile.bio = Bio::parse("Counts things. ✓ <b>not html</b>").unwrap();
    profile.timezone = Timezone::parse("Europe/Paris").unwrap();
    profile.preferences = Preferences::parse(serde_json::json!({"theme": "dark", "n": [1, 2]})).unwrap();
    profile.updated_at = fixtures::now();
    s.users.update_profile(&profile).await.unwrap();
    assert_eq!(s.users.profile(user.id).await.unwrap(), Some(profile));
}

pub async fn password_update_sets_valid_after(s: &Store) {
    let (user, profile) = fixtures::user();
    s.users.register(&user, &profile).await.unwrap();
    let hash =
        specgen_domain::PasswordHash::from_phc("$argon2id$v=19$m=19456,t=2,p=1$bmV3c2FsdA$bmV3aGFzaA".into()).unwrap();
    let at = fixtures::now();
    s.users.update_password(user.id, &hash, at).await.unwrap();
    let stored = s.users.find_by_id(user.id).await.unwrap().unwrap();
    assert_eq!(stored.password_hash, hash);
    assert_eq!(stored.tokens_valid_after, Some(at));

    let later = at + Duration::seconds(5);
    s.users.set_tokens_valid_after(user.id, later).await.unwrap();
    assert_eq!(s.users.find_by_id(user.id).await.unwrap().unwrap().tokens_valid_after, Some(later));
}

pub async fn soft_delete_cascades(s: &Store) {
    let (owner, profile) = fixtures::user();
    s.users.register(&owner, &profile).await.unwrap();
    let (other, profile) = fixtures::user();
    s.users.register(&other, &profile).await.unwrap();

    let owned = fixtures::session(owner.id);
    s.sessions.create(&owned).await.unwrap();
    s.sessions.add_participant(&fixtures::member(owned.id, other.id)).await.unwrap();
    let joined = fixtures::session(other.id);
    s.sessions.create(&joined).await.unwrap();
    s.sessions.add_participant(&fixtures::member(joined.id, owner.id)).await.unwrap();
    let family = specgen_domain::FamilyId::new_v7();
    let token = fixtures::refresh_token(owner.id, family);
    s.refresh_tokens.insert(&token).await.unwrap();

    let at = fixtures::now();
    s.users.soft_delete(owner.id, at).await.unwrap();

    let revoked = s.refresh_tokens.find_by_hash(&token.token_hash).await.unwrap().unwrap();
    assert_eq!(revoked.revoked_at, Some(at));
    assert_eq!(s.sessions.find_for_participant(owned.id, other.id).await.unwrap(), None, "owned sessions go");
    let remaining = s.sessions.participant_ids(joined.id).await.unwrap();
    assert_eq!(remaining, vec![other.id], "the deleted user leaves others' sessions");
    assert_eq!(s.users.profile(owner.id).await.unwrap(), None);
}

pub async fn updates_on_missing_user_are_not_found(s: &Store) {
    let (ghost, profile) = fixtures::user();
    assert!(matches!(s.users.update_profile(&profile).await, Err(RepoError::NotFound)));
    assert!(matches!(
        s.users.update_password(ghost.id, &ghost.password_hash, fixtures::now()).await,
        Err(RepoError::NotFound)
    ));
    assert!(matches!(s.users.set_tokens_valid_after(ghost.id, fixtures::now()).await, Err(RepoError::NotFound)));
    assert!(matches!(s.users.soft_delete(ghost.id, fixtures::now()).await, Err(RepoError::NotFound)));
}
