//! Error answers of the HTTP API: an HTTP status with a JSON body `{"code", "message"}`,
//! `code` being the gRPC status code name of the same meaning, so REST and gRPC clients read
//! the same errors. Handlers return [`ApiError`] and use `?`.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tonic::{Code, Status};
use utoipa::ToSchema;

/// An error answer: `{"code", "message"}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The gRPC status code name of the same meaning, e.g. `INVALID_ARGUMENT`.
    pub code: String,
    /// What went wrong.
    pub message: String,
}

impl ErrorBody {
    /// The body of a gRPC status.
    pub fn of(status: &Status) -> ErrorBody {
        ErrorBody {
            code: code_name(status.code()),
            message: status.message().to_owned(),
        }
    }
}

/// An error answer on its way out: the HTTP status, and the gRPC code and message of its
/// body.
#[derive(Debug)]
pub struct ApiError {
    http: StatusCode,
    code: Code,
    message: String,
}

/// What a handler answers.
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An answer with `http` status and a body of `code` and `message`.
    pub fn new(http: StatusCode, code: Code, message: impl Into<String>) -> ApiError {
        ApiError {
            http,
            code,
            message: message.into(),
        }
    }

    /// The HTTP status of this answer.
    pub fn status(&self) -> StatusCode {
        self.http
    }

    /// 400 INVALID_ARGUMENT.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, Code::InvalidArgument, message)
    }

    /// 404 NOT_FOUND.
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, Code::NotFound, message)
    }

    /// 503 UNAVAILABLE.
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable, message)
    }
}

/// A gRPC status as the HTTP answer of the same meaning.
impl From<Status> for ApiError {
    fn from(status: Status) -> ApiError {
        let http = match status.code() {
            Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => StatusCode::CONFLICT,
            Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
            Code::Unauthenticated => StatusCode::UNAUTHORIZED,
            Code::PermissionDenied => StatusCode::FORBIDDEN,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
            Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(http, status.code(), status.message())
    }
}

/// A query string that does not parse, as a JSON error like every other.
impl From<QueryRejection> for ApiError {
    fn from(rejection: QueryRejection) -> ApiError {
        ApiError::invalid(rejection.body_text())
    }
}

/// A body that is not the JSON asked for (400), or over the size limit (413).
impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        let http = rejection.status();
        let code = if http == StatusCode::PAYLOAD_TOO_LARGE {
            Code::OutOfRange
        } else {
            Code::InvalidArgument
        };
        ApiError::new(http, code, rejection.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            code: code_name(self.code),
            message: self.message,
        };
        (self.http, Json(body)).into_response()
    }
}

/// gRPC's name of `code` (`INVALID_ARGUMENT`), from tonic's Debug name (`InvalidArgument`).
pub fn code_name(code: Code) -> String {
    let name = format!("{code:?}");
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// The answer of every path that is not a route.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!(
        "no route {} (see /docs)",
        crate::text::shown(uri.path())
    ))
}

/// The answer of a route asked with a method it does not serve: 405 with the same JSON
/// body as every other error (axum adds the `Allow` header).
pub async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        Code::Unimplemented,
        format!(
            "{method} is not allowed on {} (see /docs)",
            crate::text::shown(uri.path())
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_codes_are_named_as_grpc_names_them() {
        assert_eq!(code_name(Code::InvalidArgument), "INVALID_ARGUMENT");
        assert_eq!(code_name(Code::NotFound), "NOT_FOUND");
        assert_eq!(code_name(Code::Ok), "OK");
        assert_eq!(code_name(Code::ResourceExhausted), "RESOURCE_EXHAUSTED");
    }

    #[test]
    fn statuses_map_to_the_http_status_of_the_same_meaning() {
        for (code, http) in [
            (Code::InvalidArgument, 400),
            (Code::NotFound, 404),
            (Code::FailedPrecondition, 409),
            (Code::ResourceExhausted, 429),
            (Code::PermissionDenied, 403),
            (Code::Unavailable, 503),
            (Code::Internal, 500),
        ] {
            let response = ApiError::from(Status::new(code, "x")).into_response();
            assert_eq!(response.status().as_u16(), http, "{code:?}");
        }
    }
}
