//! Every failure of the API, and its one mapping to an AWS error response: the HTTP status,
//! the `x-amzn-ErrorType` header botocore reads the exception class from, and a JSON body with
//! `Code` and `Message`.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::DomainError;
use store::StoreError;

use crate::model::Service;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed or a value is refused; the message names the field.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    LimitExceeded(String),
    #[error("rate exceeded: at most {per_second} requests per second for this access key")]
    Throttled { per_second: u32 },
    #[error("request body is {size} bytes; the limit is {limit} bytes")]
    PayloadTooLarge { size: usize, limit: usize },
    #[error("the request body did not arrive within {seconds} s")]
    RequestTimeout { seconds: u64 },
    #[error("no operation matches {method} {path}")]
    UnknownOperation { method: String, path: String },
    /// A tagged resource that does not exist, in the meetings service's words
    /// (`ResourceNotFoundException`; the voice service says `NotFoundException`).
    #[error("{0}")]
    ResourceNotFound(String),
    /// More tags than a meeting may carry (`TooManyTagsException`).
    #[error("{0}")]
    TooManyTags(String),
    /// An operation of AWS's model that this server does not serve.
    #[error(
        "{operation} is not served by this self-hosted Voice Connector: {reason}. The README's API section lists the operations it serves"
    )]
    NotServed { operation: String, reason: String },
    /// SigV4 failures.
    #[error("{0}")]
    Auth(#[from] AuthError),
    /// Our fault. The detail goes to the log with the request id, never to the client.
    #[error("internal error")]
    Internal(String),
}

/// Why a request's SigV4 authentication failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("Missing Authentication Token: sign the request with AWS Signature Version 4")]
    Missing,
    #[error("Authorization header is malformed: {0}")]
    Malformed(&'static str),
    #[error("The security token included in the request is invalid.")]
    UnknownKey,
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method."
    )]
    BadSignature,
    #[error("Signature expired: {0} is more than 15 minutes away from the server's time")]
    Expired(String),
}

impl ApiError {
    pub fn bad_request(msg: impl Into<String>) -> Self {
        ApiError::BadRequest(msg.into())
    }

    /// (HTTP status, exception name) for this error in `service`'s model.
    fn class(&self, service: Service) -> (StatusCode, &'static str) {
        let voice = service == Service::Voice;
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequestException"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "NotFoundException"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "ConflictException"),
            ApiError::LimitExceeded(_) if voice => {
                (StatusCode::BAD_REQUEST, "ResourceLimitExceededException")
            }
            ApiError::LimitExceeded(_) => (StatusCode::BAD_REQUEST, "LimitExceededException"),
            ApiError::Throttled { .. } if voice => {
                (StatusCode::TOO_MANY_REQUESTS, "ThrottledClientException")
            }
            ApiError::Throttled { .. } => (StatusCode::TOO_MANY_REQUESTS, "ThrottlingException"),
            ApiError::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "BadRequestException")
            }
            ApiError::RequestTimeout { .. } => {
                (StatusCode::REQUEST_TIMEOUT, "RequestTimeoutException")
            }
            ApiError::UnknownOperation { .. } => {
                (StatusCode::NOT_FOUND, "UnknownOperationException")
            }
            ApiError::ResourceNotFound(_) => (StatusCode::NOT_FOUND, "ResourceNotFoundException"),
            ApiError::TooManyTags(_) => (StatusCode::BAD_REQUEST, "TooManyTagsException"),
            ApiError::NotServed { .. } => (StatusCode::NOT_IMPLEMENTED, "NotImplementedException"),
            ApiError::Auth(AuthError::Missing) => {
                (StatusCode::FORBIDDEN, "MissingAuthenticationTokenException")
            }
            ApiError::Auth(AuthError::UnknownKey) => {
                (StatusCode::FORBIDDEN, "UnrecognizedClientException")
            }
            ApiError::Auth(AuthError::Malformed(_)) => {
                (StatusCode::FORBIDDEN, "IncompleteSignatureException")
            }
            ApiError::Auth(AuthError::BadSignature | AuthError::Expired(_)) => {
                (StatusCode::FORBIDDEN, "InvalidSignatureException")
            }
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "ServiceFailureException"),
        }
    }

    /// The wire answer. `request_id` ties the client's error to the server log.
    pub fn into_aws_response(self, service: Service, request_id: &str) -> Response {
        let (status, class) = self.class(service);
        if let ApiError::Internal(detail) = &self {
            tracing::error!(request_id, detail = %detail, "internal error");
        }
        let code = class.trim_end_matches("Exception");
        let body = serde_json::json!({
            "Code": code,
            "Message": self.to_string(),
            "RequestId": request_id,
        });
        let mut resp = (status, axum::Json(body)).into_response();
        let h = resp.headers_mut();
        h.insert("x-amzn-ErrorType", HeaderValue::from_static(class));
        if let Ok(v) = HeaderValue::from_str(request_id) {
            h.insert("x-amzn-RequestId", v);
        }
        if matches!(self, ApiError::Throttled { .. }) {
            h.insert("Retry-After", HeaderValue::from_static("1"));
        }
        resp
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        match &e {
            DomainError::Invalid { .. } => ApiError::BadRequest(e.to_string()),
            DomainError::NotFound { .. } => ApiError::NotFound(e.to_string()),
            DomainError::Conflict(_) => ApiError::Conflict(e.to_string()),
            DomainError::LimitExceeded { .. } => ApiError::LimitExceeded(e.to_string()),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Domain(d) => d.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}
