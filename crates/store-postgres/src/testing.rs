//! Throwaway databases for tests (feature `test-utils`). Each
//! [`TestDatabase`] is a fresh database on the server named by
//! `TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! dropped again when the value drops. Tests run in parallel, one database
//! each, so they never see each other's rows.
// Test scaffolding: failing loudly is the point.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::net::{SocketAddr, ToSocketAddrs};

use diesel_async::{AsyncConnection, AsyncPgConnection, SimpleAsyncConnection};

use crate::{PgConfig, PgStore};

pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The server tests create their databases on.
pub fn admin_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_ADMIN_URL.to_owned())
}

pub struct TestDatabase {
    name: String,
    url: String,
    admin_url: String,
}

impl TestDatabase {
    /// A new, empty database (no tables): for code that migrates itself.
    pub async fn create_empty() -> Self {
        let admin_url = admin_url();
        let name = format!("specgen_test_{}", uuid::Uuid::now_v7().simple());
        let mut admin = AsyncPgConnection::establish(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot reach the test server at {admin_url}: {e}"));
        admin.batch_execute(&format!("CREATE DATABASE \"{name}\"")).await.expect("CREATE DATABASE");
        let url = UrlParts::parse(&admin_url).with_database(&name).to_url();
        Self { name, url, admin_url }
    }

    /// A new database with every migration applied, and a store on it.
    pub async fn create_migrated() -> (Self, PgStore) {
        let db = Self::create_empty().await;
        let store = PgStore::connect(db.config()).expect("pool");
        store.migrate().await.expect("migrations");
        (db, store)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The default pool settings, pointed at this database.
    pub fn config(&self) -> PgConfig {
        PgConfig::new(self.url.clone())
    }

    /// Where the server listens, for putting a proxy in front of it.
    pub fn socket_addr(&self) -> SocketAddr {
        let parts = UrlParts::parse(&self.url);
        let host = parts.host.trim_start_matches('[').trim_end_matches(']').to_owned();
        (host.as_str(), parts.port.unwrap_or(5432))
            .to_socket_addrs()
            .expect("resolvable host")
            .next()
            .expect("an address")
    }

    /// This database's URL with the server replaced by `addr` (a proxy).
    pub fn url_via(&self, addr: SocketAddr) -> String {
        let mut parts = UrlParts::parse(&self.url);
        parts.host = match addr {
            SocketAddr::V4(v4) => v4.ip().to_string(),
            SocketAddr::V6(v6) => format!("[{}]", v6.ip()),
        };
        parts.port = Some(addr.port());
        parts.to_url()
    }
}

impl Drop for TestDatabase {
    /// `Drop` is synchronous and may run inside a runtime, so the drop
    /// happens on its own thread with its own small runtime. FORCE ends any
    /// connection a pool still holds.
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut admin = AsyncPgConnection::establish(&admin_url).await.map_err(|e| e.to_string())?;
                admin.batch_execute(&sql).await.map_err(|e| e.to_string())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!("could not drop test database {}: the dropping thread panicked", self.name),
        }
    }
}

/// Just enough of `postgres://user@host:port/db?params` to swap the
/// database or the server.
struct UrlParts {
    scheme: String,
    userinfo: Option<String>,
    host: String,
    port: Option<u16>,
    database: String,
    query: Option<String>,
}

impl UrlParts {
    fn parse(url: &str) -> Self {
        let (scheme, rest) = url.split_once("://").expect("a postgres:// URL in TEST_DATABASE_URL");
        let (rest, query) = match rest.split_once('?') {
            Some((r, q)) => (r, Some(q.to_owned())),
            None => (rest, None),
        };
        let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u.to_owned()), h),
            None => (None, authority),
        };
        // `[::1]:5432`, `host:5432` or `host`.
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !p.contains(']') => (h.to_owned(), Some(p.parse().expect("numeric port"))),
            _ => (hostport.to_owned(), None),
        };
        let host = if host.is_empty() { "127.0.0.1".to_owned() } else { host };
        Self { scheme: scheme.to_owned(), userinfo, host, port, database: database.to_owned(), query }
    }

    fn with_database(mut self, database: &str) -> Self {
        self.database = database.to_owned();
        self
    }

    fn to_url(&self) -> String {
        let mut out = format!("{}://", self.scheme);
        if let Some(u) = &self.userinfo {
            out.push_str(u);
            out.push('@');
        }
        out.push_str(&self.host);
        if let Some(p) = self.port {
            out.push_str(&format!(":{p}"));
        }
        out.push('/');
        out.push_str(&self.database);
        if let Some(q) = &self.query {
            out.push('?');
            out.push_str(q);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_swap_database_and_server() {
        let parts = UrlParts::parse("postgres://u:p@db.local:6543/postgres?sslmode=disable");
        assert_eq!(parts.with_database("x").to_url(), "postgres://u:p@db.local:6543/x?sslmode=disable");
        let mut parts = UrlParts::parse("postgres://u@[::1]/postgres");
        assert_eq!((parts.host.as_str(), parts.port), ("[::1]", None));
        parts.port = Some(1);
        assert_eq!(parts.to_url(), "postgres://u@[::1]:1/postgres");
    }
}
