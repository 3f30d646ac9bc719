//! The JWT signing key: from `JWT_SECRET`, or generated once and kept in the
//! data directory (mode 0600) so restarts keep sessions valid.

use std::fs;
use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use rand::RngCore as _;

use crate::config::Secret;

const FILE_NAME: &str = "jwt_secret";

/// The configured key, else the kept one, else a new one (written first).
pub fn jwt_secret(configured: Option<&Secret>, data_dir: &Path) -> anyhow::Result<Secret> {
    if let Some(secret) = configured {
        return Ok(secret.clone());
    }
    let path = data_dir.join(FILE_NAME);
    match fs::read_to_string(&path) {
        Ok(kept) if kept.trim().len() >= 32 => return Ok(Secret::new(kept.trim().to_owned())),
        Ok(_) => anyhow::bail!("{} is shorter than 32 bytes; delete it to generate a new key", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
    }
    fs::create_dir_all(data_dir).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", data_dir.display()))?;
    let mut bytes = [0u8; 48];
    rand::rng().fill_bytes(&mut bytes);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    write_private(&path, &secret)?;
    tracing::info!(path = %path.display(), "generated a JWT signing key");
    Ok(Secret::new(secret))
}

/// Creates the file readable by its owner only, failing if it already exists
/// (two instances starting at once must not overwrite each other's key).
fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| anyhow::anyhow!("cannot create {}: {e}", path.display()))?;
    file.write_all(content.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn generated_once_kept_private_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = jwt_secret(None, dir.path()).unwrap();
        assert!(first.expose().len() >= 32);
        let again = jwt_secret(None, dir.path()).unwrap();
        assert_eq!(first, again);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = fs::metadata(dir.path().join(FILE_NAME)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let configured = Secret::new("x".repeat(40));
        assert_eq!(jwt_secret(Some(&configured), dir.path()).unwrap(), configured);
    }
}
