use specgen_domain::FamilyId;
use specgen_ports::{RepoError, Store};

use crate::fixtures;

async fn registered(s: &Store) -> specgen_domain::User {
    let (user, profile) = fixtures::user();
    s.users.register(&user, &profile).await.unwrap();
    user
}

pub async fn insert_and_find_by_hash(s: &Store) {
    let user = registered(s).await;
    let mut token = fixtures::refresh_token(user.id, FamilyId::new_v7());
    token.device_id = Some(specgen_domain::DeviceId::parse("laptop-1").unwrap());
    s.refresh_tokens.insert(&token).await.unwrap();
    assert_eq!(s.refresh_tokens.find_by_hash(&token.token_hash).await.unwrap(), Some(token));
    let unknown = fixtures::refresh_token(user.id, FamilyId::new_v7());
    assert_eq!(s.refresh_tokens.find_by_hash(&unknown.token_hash).await.unwrap(), None);
}

pub async fn rotate_spends_old_and_inserts_new(s: &Store) {
    let user = registered(s).await;
    let family = FamilyId::new_v7();
    let old = fixtures::refresh_token(user.id, family);
    s.refresh_tokens.insert(&old).await.unwrap();
    let new = fixtures::refresh_token(user.id, family);
    let at = fixtures::now();
    s.refresh_tokens.rotate(old.id, at, &new).await.unwrap();
    assert_eq!(s.refresh_tokens.find_by_hash(&old.token_hash).await.unwrap().unwrap().spent_at, Some(at));
    assert_eq!(s.refresh_tokens.find_by_hash(&new.token_hash).await.unwrap(), Some(new));
}

pub async fn rotate_twice_conflicts(s: &Store) {
    let user = registered(s).await;
    let family = FamilyId::new_v7();
    let old = fixtures::refresh_token(user.id, family);
    s.refresh_tokens.insert(&old).await.unwrap();
    s.refresh_tokens.rotate(old.id, fixtures::now(), &fixtures::refresh_token(user.id, family)).await.unwrap();
    let again = fixtures::refresh_token(user.id, family);
    assert!(matches!(s.refresh_tokens.rotate(old.id, fixtures::now(), &again).await, Err(RepoError::Conflict(_))));
    assert_eq!(s.refresh_tokens.find_by_hash(&again.token_hash).await.unwrap(), None, "nothing inserted");

    // A revoked token cannot be rotated either.
    let revoked = fixtures::refresh_token(user.id, FamilyId::new_v7());
    s.refresh_tokens.insert(&revoked).await.unwrap();
    s.refresh_tokens.revoke_family(revoked.family_id, fixtures::now()).await.unwrap();
    let next = fixtures::refresh_token(user.id, revoked.family_id);
    assert!(matches!(s.refresh_tokens.rotate(revoked.id, fixtures::now(), &next).await, Err(RepoError::Conflict(_))));
}

pub async fn concurrent_rotations_one_wins(s: &Store) {
    let user = registered(s).await;
    let family = FamilyId::new_v7();
    let old = fixtures::refresh_token(user.id, family);
    s.refresh_tokens.insert(&old).await.unwrap();
    let attempts = (0..6).map(|_| {
        let repo = s.refresh_tokens.clone();
        let new = fixtures::refresh_token(user.id, family);
        tokio::spawn(async move { repo.rotate(old.id, fixtures::now(), &new).await })
    });
    let results = futures::future::join_all(attempts).await;
    let won = results.iter().filter(|r| matches!(r, Ok(Ok(())))).count();
    let conflicted = results.iter().filter(|r| matches!(r, Ok(Err(RepoError::Conflict(_))))).count();
    assert_eq!((won, conflicted), (1, 5), "{results:?}");
}

pub async fn revoke_family_only_touches_family(s: &Store) {
    let user = registered(s).await;
    let (a, b) = (FamilyId::new_v7(), FamilyId::new_v7());
    let a1 = fixtures::refresh_token(user.id, a);
    let a2 = fixtures::refresh_token(user.id, a);
    let b1 = fixtures::refresh_token(user.id, b);
    for t in [&a1, &a2, &b1] {
        s.refresh_tokens.insert(t).await.unwrap();
    }
    let at = fixtures::now();
    assert_eq!(s.refresh_tokens.revoke_family(a, at).await.unwrap(), 2);
    assert_eq!(s.refresh_tokens.revoke_family(a, at).await.unwrap(), 0, "already revoked");
    assert_eq!(s.refresh_tokens.find_by_hash(&a2.token_hash).await.unwrap().unwrap().revoked_at, Some(at));
    assert_eq!(s.refresh_tokens.find_by_hash(&b1.token_hash).await.unwrap().unwrap().revoked_at, None);
}

pub async fn revoke_all_keeps_excepted_family(s: &Store) {
    let user = registered(s).await;
    let other_user = registered(s).await;
    let (keep, drop) = (FamilyId::new_v7(), FamilyId::new_v7());
    let kept = fixtures::refresh_token(user.id, keep);
    let dropped = fixtures::refresh_token(user.id, drop);
    let foreign = fixtures::refresh_token(other_user.id, FamilyId::new_v7());
    for t in [&kept, &dropped, &foreign] {
        s.refresh_tokens.insert(t).await.unwrap();
    }
    let at = fixtures::now();
    assert_eq!(s.refresh_tokens.revoke_all_for_user(user.id, Some(keep), at).await.unwrap(), 1);
    assert!(s.refresh_tokens.find_by_hash(&kept.token_hash).await.unwrap().unwrap().revoked_at.is_none());
    assert!(s.refresh_tokens.find_by_hash(&foreign.token_hash).await.unwrap().unwrap().revoked_at.is_none());
    assert_eq!(s.refresh_tokens.revoke_all_for_user(user.id, None, at).await.unwrap(), 1);
    assert!(s.refresh_tokens.find_by_hash(&kept.token_hash).await.unwrap().unwrap().revoked_at.is_some());
}

pub async fn family_liveness_follows_rotation_and_revocation(s: &Store) {
    let user = registered(s).await;
    let family = FamilyId::new_v7();
    let now = fixtures::now();
    assert!(!s.refresh_tokens.family_is_live(family, now).await.unwrap(), "no token yet");
    let first = fixtures::refresh_token(user.id, family);
    s.refresh_tokens.insert(&first).await.unwrap();
    assert!(s.refresh_tokens.family_is_live(family, now).await.unwrap());
    s.refresh_tokens.rotate(first.id, now, &fixtures::refresh_token(user.id, family)).await.unwrap();
    assert!(s.refresh_tokens.family_is_live(family, now).await.unwrap(), "the rotated-in token is live");
    let after_expiry = first.expires_at + time::Duration::seconds(1);
    assert!(!s.refresh_tokens.family_is_live(family, after_expiry).await.unwrap(), "expired");
    s.refresh_tokens.revoke_family(family, now).await.unwrap();
    assert!(!s.refresh_tokens.family_is_live(family, now).await.unwrap(), "revoked");
}
