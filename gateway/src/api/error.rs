//! The one mapping from API errors to HTTP: Prometheus's JSON envelope
//! (`{"status":"error","errorType":...,"error":...}`) with its status codes.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// Prometheus's `errorType` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorType {
    BadData,
    Execution,
    Timeout,
    Canceled,
    Internal,
    Unavailable,
    NotFound,
}

impl ErrorType {
    fn status(self) -> StatusCode {
        match self {
            ErrorType::BadData => StatusCode::BAD_REQUEST,
            ErrorType::Execution => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorType::Timeout => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Canceled => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorType::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorType::NotFound => StatusCode::NOT_FOUND,
        }
    }
}

/// An API error; internal details are logged, not sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorType,
    pub message: String,
}

impl ApiError {
    pub fn bad_data(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorType::BadData,
            message: message.into(),
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorType::Unavailable,
            message: message.into(),
        }
    }
}

#[derive(Serialize)]
struct Envelope<'a> {
    status: &'static str,
    #[serde(rename = "errorType")]
    error_type: ErrorType,
    error: &'a str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.kind.status(),
            Json(Envelope {
                status: "error",
                error_type: self.kind,
                error: &self.message,
            }),
        )
            .into_response()
    }
}

/// A success envelope: `{"status":"success","data":...}`.
pub fn success<T: Serialize>(data: T) -> Response {
    #[derive(Serialize)]
    struct Ok<T> {
        status: &'static str,
        data: T,
    }
    Json(Ok {
        status: "success",
        data,
    })
    .into_response()
}
