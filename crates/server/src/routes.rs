//! Routes: the operations, the event stream and the UI, behind the guard.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use kiln_engine::{ApiError, Engine, ErrorCode, OperationKind};
use serde::Deserialize;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::{Stream, StreamExt};

use crate::assets::{UiSource, content_type};
use crate::guard::Guard;

struct Shared {
    engine: Engine,
    guard: Guard,
    ui: UiSource,
    /// Becomes true when the server is stopping; event streams end then.
    stopped: tokio::sync::watch::Receiver<bool>,
}

type AppState = Arc<Shared>;

/// The largest request body: one upload at the engine's limit, base64-encoded, with room.
const UPLOAD_BODY_LIMIT: usize = kiln_engine::processing::ops::MAX_UPLOAD_BYTES / 3 * 4 + (1 << 20);

pub fn router(engine: Engine, guard: Guard, ui: UiSource, stopped: tokio::sync::watch::Receiver<bool>) -> Router {
    let state = Arc::new(Shared { engine, guard, ui, stopped });
    Router::new()
        .route("/api/events", get(events))
        // Browsers send dropped images inside `jobs.submit` (base64): room for the engine's own
        // upload limit, which refuses larger files with a clear reason.
        .route(
            "/api/{op}",
            get(query)
                .post(mutation)
                .fallback(wrong_method)
                .layer(axum::extract::DefaultBodyLimit::max(UPLOAD_BODY_LIMIT)),
        )
        .fallback(page)
        .layer(middleware::from_fn_with_state(state.clone(), guard_layer))
        .with_state(state)
}

/// The HTTP status for an error code.
fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorCode::InvalidModel => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::UnknownOperation | ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Unsupported => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::PermissionDenied | ErrorCode::ForbiddenHost | ErrorCode::ForbiddenOrigin => StatusCode::FORBIDDEN,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::Busy | ErrorCode::Cancelled => StatusCode::CONFLICT,
        ErrorCode::OutOfMemory => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::DriverError => StatusCode::BAD_GATEWAY,
        // The device behind the server stopped answering: as a gateway whose upstream timed out.
        ErrorCode::DeviceStalled => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::ComputeFailed | ErrorCode::Io | ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error_response(error: ApiError) -> Response {
    let mut response = (status_of(error.code), axum::Json(error)).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn json_response(value: serde_json::Value) -> Response {
    let mut response = axum::Json(value).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// Host, then Origin, then (for the API) the token: every request, every route.
async fn guard_layer(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    if let Err(error) = state.guard.check_host(headers).and_then(|_| state.guard.check_origin(headers)) {
        return error_response(error);
    }
    let path = request.uri().path();
    if path == "/api" || path.starts_with("/api/") {
        // Only the event stream may carry the token in its URL: EventSource sets no headers.
        let query_token = if path == "/api/events" {
            Query::<TokenQuery>::try_from_uri(request.uri()).ok().and_then(|q| q.0.token)
        } else {
            None
        };
        if let Err(error) = state.guard.check_token(headers, query_token.as_deref()) {
            return error_response(error);
        }
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    response
}

#[derive(Deserialize)]
struct QueryInput {
    input: Option<String>,
}

fn kind_of(op: &str) -> Result<OperationKind, ApiError> {
    kiln_engine::operation(op).map(|o| o.kind).ok_or_else(|| {
        ApiError::new(ErrorCode::UnknownOperation, format!("no operation named {op:?}"))
            .with_details(serde_json::json!({ "operation": op }))
    })
}

fn method_error(op: &str, kind: OperationKind) -> ApiError {
    let (method, what) = match kind {
        OperationKind::Query => ("GET", "a query"),
        OperationKind::Mutation => ("POST", "a change"),
    };
    ApiError::new(ErrorCode::MethodNotAllowed, format!("{op} is {what}: use {method}"))
}

async fn query(State(state): State<AppState>, Path(op): Path<String>, Query(q): Query<QueryInput>) -> Response {
    let run = async {
        let kind = kind_of(&op)?;
        if kind != OperationKind::Query {
            return Err(method_error(&op, kind));
        }
        let input = match q.input.as_deref() {
            None | Some("") => serde_json::Value::Null,
            Some(text) => serde_json::from_str(text)
                .map_err(|e| ApiError::invalid_input(format!("{op}: the input parameter is not JSON: {e}")))?,
        };
        kiln_engine::dispatch(&state.engine, &op, input).await
    };
    match run.await {
        Ok(value) => json_response(value),
        Err(error) => error_response(error),
    }
}

async fn mutation(
    State(state): State<AppState>,
    Path(op): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let run = async {
        let kind = kind_of(&op)?;
        if kind != OperationKind::Mutation {
            return Err(method_error(&op, kind));
        }
        // JSON only: a cross-site form cannot send it without a CORS preflight, which is refused.
        let is_json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.split(';').next().unwrap_or("").trim().eq_ignore_ascii_case("application/json"));
        if !is_json {
            return Err(ApiError::invalid_input(format!("{op}: send the input as application/json")));
        }
        let input = if body.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| ApiError::invalid_input(format!("{op}: the body is not JSON: {e}")))?
        };
        kiln_engine::dispatch(&state.engine, &op, input).await
    };
    match run.await {
        Ok(value) => json_response(value),
        Err(error) => error_response(error),
    }
}

async fn wrong_method(method: Method, Path(op): Path<String>) -> Response {
    match kind_of(&op) {
        Ok(kind) => error_response(method_error(&op, kind)),
        Err(_) => error_response(ApiError::new(ErrorCode::MethodNotAllowed, format!("{method} is not served here"))),
    }
}

async fn events(State(state): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = BroadcastStream::new(state.engine.subscribe()).map(|message| {
        Ok(match message {
            Ok(event) => Event::default()
                .event("kiln")
                .json_data(&event)
                .unwrap_or_else(|e| Event::default().event("error").data(e.to_string())),
            // A slow reader missed events; it should fetch state again.
            Err(BroadcastStreamRecvError::Lagged(missed)) => Event::default().event("lagged").data(missed.to_string()),
        })
    });
    let mut stopped = state.stopped.clone();
    let stream = futures_util::StreamExt::take_until(stream, async move {
        let _ = stopped.wait_for(|stop| *stop).await;
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The web UI. Pages carry a strict content security policy.
async fn page(State(state): State<AppState>, method: Method, request: Request) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return error_response(ApiError::new(ErrorCode::MethodNotAllowed, format!("{method} is not served here")));
    }
    let path = request.uri().path();
    let Some(bytes) = state.ui.get(path) else {
        if !state.ui.is_built() && path == "/" {
            let text = "Kiln's web UI is not built. Run `npm ci && npm run build` in the repository, then start `kiln serve` again.";
            return (StatusCode::SERVICE_UNAVAILABLE, text).into_response();
        }
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let file = if path == "/" { "/index.html" } else { path };
    let mut response = Response::new(Body::from(bytes.into_owned()));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(file)));
    if file.ends_with(".html") {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            ),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    }
    response
}
