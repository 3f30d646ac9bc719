//! Names for accounts in rate-limit keys, without their email addresses:
//! the keys live in Redis, which is no place for personal data.

use sha2::{Digest as _, Sha256};
use specgen_domain::Email;

/// Keyed by the JWT secret, which every instance shares (so all name an
/// account alike), so that a name cannot be checked against a list of
/// addresses by someone who can read Redis but not the secret.
pub(crate) struct AccountPseudonyms {
    key: [u8; 32],
}

impl AccountPseudonyms {
    pub(crate) fn new(secret: &[u8]) -> Self {
        Self { key: Sha256::new().chain_update(b"specgen rate-limit keys\0").chain_update(secret).finalize().into() }
    }

    /// 128 bits of a keyed digest of the (normalised) address, in hex.
    pub(crate) fn of(&self, email: &Email) -> String {
        let digest = Sha256::new().chain_update(self.key).chain_update(email.as_str().as_bytes()).finalize();
        digest[..16].iter().map(|b| format!("{b:02x}")).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(text: &str) -> Email {
        Email::parse(text).unwrap()
    }

    #[test]
    fn one_name_per_address_and_secret_and_no_address_in_it() {
        let names = AccountPseudonyms::new(&[7; 32]);
        let ada = names.of(&email("ada@example.com"));
        assert_eq!(ada.len(), 32);
        assert!(!ada.contains("ada") && !ada.contains("example"), "{ada}");
        assert_eq!(names.of(&email("ada@example.com")), ada, "stable");
        assert_ne!(names.of(&email("bob@example.com")), ada, "one per address");
        assert_ne!(AccountPseudonyms::new(&[8; 32]).of(&email("ada@example.com")), ada, "keyed by the secret");
    }
}
