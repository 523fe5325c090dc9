//! API errors: a stable machine code, a human message and the right status.
//!
//! Internal causes are logged where they happen and never reach the client.

use axum::Json;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody, JsonRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use candor_vault::VaultError;
use serde::Serialize;
use utoipa::ToSchema;

/// The body of every error response.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A stable code and a human message.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable, stable across versions (e.g. `consent_required`).
    pub code: &'static str,
    /// For people; may change.
    pub message: String,
}

/// The code of an error response, kept on it for the layers it passes through (the
/// authorisation layer logs refusals by it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ErrorCode(pub &'static str);

/// An error on its way to the client.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    /// An error with an explicit status and code.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    /// A 500 with nothing of the cause.
    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "internal error; the operator's log has the details",
        )
    }
}

impl From<VaultError> for ApiError {
    fn from(e: VaultError) -> ApiError {
        let status = match &e {
            VaultError::Forbidden(_) | VaultError::PurposeNotPermitted(_) => StatusCode::FORBIDDEN,
            VaultError::UnknownPurpose(_)
            | VaultError::RecipientNotDeclared(_)
            | VaultError::Invalid(_) => StatusCode::BAD_REQUEST,
            VaultError::SubjectNotFound | VaultError::KeyNotFound => StatusCode::NOT_FOUND,
            VaultError::SubjectErased | VaultError::KeyEpochDestroyed => StatusCode::GONE,
            VaultError::ConsentChanged | VaultError::AlreadyClaimed | VaultError::KeyNotLive => {
                StatusCode::CONFLICT
            }
            VaultError::LogUnavailable | VaultError::NotSequencer => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            VaultError::Internal => return ApiError::internal(),
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl ApiError {
    /// A body that could not be read whole: too long, not in by its deadline, or cut off.
    pub(crate) fn from_body_failure(failure: &BytesRejection) -> ApiError {
        if let BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_)) = failure
        {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("bodies are limited to {} bytes", crate::MAX_BODY_BYTES),
            );
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(failure);
        while let Some(error) = cause {
            if error.is::<crate::server::BodyTimedOut>() {
                return ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "body_timeout",
                    "the request body did not arrive in time",
                );
            }
            cause = error.source();
        }
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "unreadable_body",
            "the request body was cut off",
        )
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> ApiError {
        match r {
            JsonRejection::JsonSyntaxError(_) => ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                "the body is not valid JSON",
            ),
            // serde's message names the offending field and expected type, never the value.
            JsonRejection::JsonDataError(e) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_body",
                e.body_text(),
            ),
            JsonRejection::MissingJsonContentType(_) => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send Content-Type: application/json",
            ),
            JsonRejection::BytesRejection(r) => ApiError::from_body_failure(&r),
            _ => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", "unreadable body"),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, "request failed");
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        response.extensions_mut().insert(ErrorCode(self.code));
        if self.status == StatusCode::REQUEST_TIMEOUT {
            // The rest of the body may still be on its way; the connection cannot be reused.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}
