//! The success envelope: `{"success": true, "data": ..., "message": ...}`.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpResponse, HttpResponseBuilder};
use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Envelope<T> {
    pub success: bool,
    pub data: T,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

pub fn ok<T: Serialize>(data: T) -> HttpResponse {
    with_status(StatusCode::OK, data)
}

pub fn created<T: Serialize>(data: T) -> HttpResponse {
    with_status(StatusCode::CREATED, data)
}

pub fn with_status<T: Serialize>(status: StatusCode, data: T) -> HttpResponse {
    HttpResponseBuilder::new(status)
        // A user's data (and tokens) must not be kept by a browser or a proxy.
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(Envelope { success: true, data, message: None })
}
