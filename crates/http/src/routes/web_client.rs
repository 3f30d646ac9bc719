//! The web client, embedded in the binary from `web/app` (read from disk in
//! debug builds, so editing the client needs no rebuild). Known files are
//! served as they are; `/`, and any other `GET` that accepts HTML
//! (`text/html`, `text/*` or `*/*`), gets `index.html`, so the client's
//! own routes survive a reload.

use actix_web::http::header::{self, CacheControl, CacheDirective, ContentType};
use actix_web::{HttpRequest, HttpResponse};

#[derive(rust_embed::RustEmbed)]
#[folder = "../../web/app"]
struct Assets;

/// Paths that belong to the server, never to the client's routes.
const SERVER_PREFIXES: [&str; 4] = ["/api/", "/ws", "/health", "/metrics"];

/// The embedded file at `path`, or `index.html` for a client-side route.
/// `None` when the request is not the client's to answer.
pub fn serve(req: &HttpRequest) -> Option<HttpResponse> {
    if req.method() != actix_web::http::Method::GET && req.method() != actix_web::http::Method::HEAD {
        return None;
    }
    let path = req.path();
    if path == "/api" || SERVER_PREFIXES.iter().any(|p| path.starts_with(p)) {
        return None;
    }
    let name = path.trim_start_matches('/');
    if !name.is_empty()
        && let Some(file) = Assets::get(name)
    {
        return Some(file_response(req, name, file));
    }
    // `/` is the web client's, whatever the request accepts.
    if !name.is_empty() && !accepts_html(req) {
        return None;
    }
    Assets::get("index.html").map(|file| file_response(req, "index.html", file))
}

/// Whether the request's `Accept` takes HTML: `text/html`, `text/*` or
/// `*/*` with a quality above zero (what browsers and curl send). A request
/// without `Accept` (a bare probe) gets the JSON 404 instead.
fn accepts_html(req: &HttpRequest) -> bool {
    crate::accept::MediaRanges::of(req).takes("text", "html")
}

fn file_response(req: &HttpRequest, name: &str, file: rust_embed::EmbeddedFile) -> HttpResponse {
    let mime = file.metadata.mimetype();
    // The page itself must be revalidated so a new release is picked up;
    // the assets it names are revalidated by ETag too (their names carry no
    // hash), which costs a 304 per file.
    let tag = hex(&file.metadata.sha256_hash()[..8]);
    let unchanged = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim().trim_start_matches("W/").trim_matches('"') == tag));
    let mut response = if unchanged { HttpResponse::NotModified() } else { HttpResponse::Ok() };
    response
        .insert_header((header::CONTENT_TYPE, mime))
        .insert_header(header::ETag(header::EntityTag::new_strong(tag)))
        .insert_header(CacheControl(vec![CacheDirective::NoCache]))
        .insert_header(("X-Content-Type-Options", "nosniff"));
    if name == "index.html" {
        response.insert_header(ContentType::html()).insert_header((
            header::CONTENT_SECURITY_POLICY,
            // No inline script and no other origin: user or AI text that
            // slipped into the page could not run.
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ));
    }
    if unchanged {
        return response.finish();
    }
    response.body(file.data.into_owned())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
