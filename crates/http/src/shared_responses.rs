//! The error answers an operation gets from what it takes rather than from
//! what it does, added to the OpenAPI document in one place.
//!
//! Every protected operation can answer 401 (the `AuthUser` extractor), every
//! JSON body can be unparseable, too large, of another media type or invalid
//! (`ValidJson` and the optional bodies), a query string can be malformed or
//! out of range (`PageQuery`), a path id can name nothing, and any operation
//! that reaches the store or the cache can find it down. Annotating each
//! handler with all of them by hand is how they went missing, so that clients
//! and API fuzzers saw statuses the document did not list. Responses a
//! handler documents itself (with its own description) are kept as they are.

use std::collections::BTreeMap;

use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::{Operation, ParameterIn, PathItem};
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, RefOr, ResponseBuilder};

/// Adds the shared error responses to every operation of `api`.
pub fn complete(mut api: OpenApi) -> OpenApi {
    for (path, item) in api.paths.paths.iter_mut() {
        for operation in operations(item) {
            add_shared(path, operation);
        }
    }
    api
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
        &mut item.query,
    ]
    .into_iter()
    .flatten()
    .chain(item.additional_operations.values_mut())
}

fn add_shared(path: &str, operation: &mut Operation) {
    let protected = operation.security.as_ref().is_some_and(|s| !s.is_empty());
    let takes = |place: ParameterIn| {
        operation.parameters.iter().flatten().any(|p| matches!(p, RefOr::T(p) if p.parameter_in == place))
    };
    let (has_query, has_path) = (takes(ParameterIn::Query), takes(ParameterIn::Path));
    let has_body = operation.request_body.is_some();

    let mut reasons: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut add = |status, reason| reasons.entry(status).or_default().push(reason);
    if protected {
        add(
            "401",
            "UNAUTHENTICATED: no, malformed or revoked bearer token; TOKEN_EXPIRED: the access token is past its expiry",
        );
    }
    if has_body {
        add("400", "BAD_REQUEST: the body is not valid JSON");
        add("413", "PAYLOAD_TOO_LARGE: the body is over the configured limit (default 64 KiB)");
        add("415", "UNSUPPORTED_MEDIA_TYPE: the body is not application/json");
        add("422", "VALIDATION_FAILED: a field is missing, of the wrong type or invalid; `details` names each");
    }
    if has_query {
        add(
            "422",
            "VALIDATION_FAILED: `limit` outside 1..100, a `cursor` this server did not issue for this list, or a parameter given twice",
        );
    }
    if has_path {
        add("404", "NOT_FOUND: no such resource, or one the caller may not know exists");
    }
    if path.starts_with("/api/") {
        add(
            "503",
            "UNAVAILABLE: a dependency (store, cache) is down, or the server turns work away rather than queue it for long (password checks: then with `Retry-After`); retry shortly",
        );
    }

    for (status, reasons) in reasons {
        let description = reasons.join(". ");
        match operation.responses.responses.get_mut(status) {
            // Documented by the handler without saying why: say it.
            Some(RefOr::T(response)) if response.description.is_empty() => response.description = description,
            Some(_) => {}
            None => {
                let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorEnvelope"))).build();
                let response = ResponseBuilder::new().description(description).content("application/json", content);
                operation.responses.responses.insert(status.to_owned(), response.into());
            }
        }
    }
    // A 429 carries what a client needs to wait the right time.
    if let Some(RefOr::T(limited)) = operation.responses.responses.get_mut("429") {
        for (name, meaning) in [
            ("Retry-After", "seconds to wait before trying again"),
            ("RateLimit-Limit", "requests allowed in the window"),
            ("RateLimit-Remaining", "requests left in the window (0 here)"),
            ("RateLimit-Reset", "seconds until the window resets"),
        ] {
            let header =
                HeaderBuilder::new().schema(Some(Object::with_type(Type::Integer))).description(Some(meaning)).build();
            limited.headers.entry(name.to_owned()).or_insert_with(|| header.into());
        }
    }
    // OpenAPI requires a description on every response; utoipa leaves it
    // empty when a handler gives none. The status's reason phrase will do.
    for (status, response) in &mut operation.responses.responses {
        if let RefOr::T(response) = response
            && response.description.is_empty()
        {
            let reason = status.parse::<u16>().ok().and_then(|s| actix_web::http::StatusCode::from_u16(s).ok());
            response.description = reason.and_then(|s| s.canonical_reason()).unwrap_or("Response").to_owned();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statuses(api: &OpenApi, path: &str, pick: impl Fn(&PathItem) -> Option<&Operation>) -> Vec<String> {
        let item = &api.paths.paths[path];
        pick(item).expect("operation").responses.responses.keys().cloned().collect()
    }

    #[test]
    fn adds_what_each_operation_takes_and_keeps_what_it_documents() {
        let api = crate::openapi();
        // Protected, body and path id: everything but the query's errors.
        let update = statuses(&api, "/api/v1/chat/sessions/{id}", |i| i.patch.as_ref());
        for status in ["200", "400", "401", "403", "404", "413", "415", "422", "503"] {
            assert!(update.iter().any(|s| s == status), "PATCH session lacks {status}: {update:?}");
        }
        // Every owner-only operation says a member gets 403.
        for (path, pick) in [
            ("/api/v1/chat/sessions/{id}", (|i: &PathItem| i.delete.as_ref()) as fn(&PathItem) -> Option<&Operation>),
            ("/api/v1/chat/sessions/{id}/participants", |i| i.post.as_ref()),
            ("/api/v1/chat/sessions/{id}/participants/{user_id}", |i| i.delete.as_ref()),
        ] {
            assert!(statuses(&api, path, pick).iter().any(|s| s == "403"), "{path} lacks 403");
        }
        // A page: the query's 422, no body errors.
        let list = statuses(&api, "/api/v1/chat/sessions", |i| i.get.as_ref());
        assert!(list.iter().any(|s| s == "422"), "{list:?}");
        assert!(!list.iter().any(|s| s == "400"), "a query string is never a 400: {list:?}");
        assert!(!list.iter().any(|s| s == "415"), "no body, no 415: {list:?}");
        // A 429 names the headers that say how long to wait.
        let send = api.paths.paths["/api/v1/chat/sessions/{id}/messages"].post.as_ref().expect("send");
        let RefOr::T(limited) = &send.responses.responses["429"] else { panic!("429 is inline") };
        for header in ["Retry-After", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"] {
            assert!(limited.headers.contains_key(header), "429 lacks {header}");
        }
        // Liveness needs nothing and can fail in no documented way.
        assert_eq!(statuses(&api, "/health/live", |i| i.get.as_ref()), ["200"]);
        // A handler's own description wins over the shared one.
        let register = api.paths.paths["/api/v1/auth/register"].post.as_ref().expect("register");
        let RefOr::T(invalid) = &register.responses.responses["422"] else { panic!("422 is inline") };
        assert_eq!(invalid.description, "Invalid fields");
        // Every response has a description, as OpenAPI requires.
        for (path, item) in &api.paths.paths {
            let methods = [
                ("get", &item.get),
                ("put", &item.put),
                ("post", &item.post),
                ("delete", &item.delete),
                ("patch", &item.patch),
            ];
            for (method, operation) in methods {
                for (status, response) in operation.iter().flat_map(|o| &o.responses.responses) {
                    let RefOr::T(response) = response else { continue };
                    assert!(!response.description.is_empty(), "{method} {path} {status}");
                }
            }
        }
    }
}
