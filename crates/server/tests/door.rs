//! The HTTP door refuses, on every route and on the event stream: a wrong Host, a foreign or
//! `null` Origin, a missing or wrong token. Requests are written by hand on a TCP socket so
//! every header is exactly what an attacker's browser or script would send.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kiln_engine::devices::telemetry::TelemetryOptions;
use kiln_engine::devices::telemetry::nvml::NvmlMode;
use kiln_engine::devices::telemetry::sysfs::SystemRoots;
use kiln_engine::{Engine, EngineOptions, OPERATIONS, OperationKind};
use kiln_server::{Door, ServeOptions, UiSource};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct Running {
    addr: SocketAddr,
    engine: Engine,
    _data: kiln_testdir::TempDir,
}

async fn start() -> Running {
    let machine = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/fixtures/machines/amd-rx7900xtx");
    let data = kiln_testdir::TempDir::new();
    let options = EngineOptions {
        data_dir: data.path().to_path_buf(),
        telemetry: TelemetryOptions { roots: SystemRoots::under(&machine), nvml: NvmlMode::Disabled, skip_wgpu: true },
        background_sampling: false,
    };
    let engine = tokio::task::spawn_blocking(move || Engine::start(options).unwrap()).await.unwrap();
    let ui = kiln_testdir::TempDir::new();
    std::fs::write(ui.path().join("index.html"), "<!doctype html><title>Kiln</title>").unwrap();
    let door = Door::bind(ServeOptions {
        addr: "127.0.0.1:0".parse().unwrap(),
        token: Some(TOKEN.into()),
        ui: UiSource::Folder(ui.keep()),
        ..ServeOptions::default()
    })
    .await
    .unwrap();
    let addr = door.local_addr();
    assert_eq!(door.url(), format!("http://127.0.0.1:{}/#token={TOKEN}", addr.port()));
    tokio::spawn(door.run(engine.clone(), std::future::pending()));
    Running { addr, engine, _data: data }
}

struct Req<'a> {
    method: &'a str,
    path: String,
    host: Option<String>,
    origin: Option<&'a str>,
    auth: Option<String>,
    body: Option<&'a str>,
    content_type: &'a str,
}

impl<'a> Req<'a> {
    fn new(run: &Running, method: &'a str, path: impl Into<String>) -> Self {
        Self {
            method,
            path: path.into(),
            host: Some(format!("127.0.0.1:{}", run.addr.port())),
            origin: None,
            auth: Some(format!("Bearer {TOKEN}")),
            body: if method == "POST" { Some("{}") } else { None },
            content_type: "application/json",
        }
    }
}

/// Sends one request and returns the status and whatever arrived within `wait`.
async fn send(addr: SocketAddr, req: &Req<'_>, wait: Duration) -> (u16, String) {
    let mut text = format!("{} {} HTTP/1.1\r\nConnection: close\r\n", req.method, req.path);
    if let Some(host) = &req.host {
        text += &format!("Host: {host}\r\n");
    }
    if let Some(origin) = req.origin {
        text += &format!("Origin: {origin}\r\n");
    }
    if let Some(auth) = &req.auth {
        text += &format!("Authorization: {auth}\r\n");
    }
    if let Some(body) = req.body {
        text += &format!("Content-Type: {}\r\nContent-Length: {}\r\n\r\n{body}", req.content_type, body.len());
    } else {
        text += "\r\n";
    }
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let _ = tokio::time::timeout(wait, stream.read_to_end(&mut received)).await;
    let received = String::from_utf8_lossy(&received).into_owned();
    let status = received.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, received)
}

/// Every route: each operation with its own method, the event stream, and a page.
fn routes(run: &Running) -> Vec<Req<'static>> {
    let mut routes: Vec<Req> = OPERATIONS
        .iter()
        .map(|op| match op.kind {
            OperationKind::Query => Req::new(run, "GET", format!("/api/{}", op.name)),
            OperationKind::Mutation => Req::new(run, "POST", format!("/api/{}", op.name)),
        })
        .collect();
    routes.push(Req::new(run, "GET", format!("/api/events?token={TOKEN}")));
    routes
}

#[tokio::test]
async fn every_route_refuses_a_foreign_host() {
    let run = start().await;
    let port = run.addr.port();
    for bad in [
        format!("evil.example:{port}"),
        "127.0.0.1".into(),
        format!("127.0.0.1:{}", port + 1),
        format!("localhost.evil.example:{port}"),
    ] {
        for mut req in routes(&run).into_iter().chain([Req::new(&run, "GET", "/")]) {
            req.host = Some(bad.clone());
            let (status, body) = send(run.addr, &req, Duration::from_secs(5)).await;
            assert_eq!(status, 403, "{} {} with Host {bad}: {body}", req.method, req.path);
            assert!(body.contains("\"forbidden_host\""), "{body}");
        }
    }
    let mut no_host = Req::new(&run, "GET", "/api/devices.list");
    no_host.host = None;
    assert_ne!(send(run.addr, &no_host, Duration::from_secs(5)).await.0, 200);
}

#[tokio::test]
async fn every_route_refuses_a_foreign_or_null_origin() {
    let run = start().await;
    let port = run.addr.port();
    for bad in ["null", "http://evil.example", "https://127.0.0.1", &format!("http://127.0.0.1:{}", port + 1)] {
        for mut req in routes(&run) {
            req.origin = Some(bad);
            let (status, body) = send(run.addr, &req, Duration::from_secs(5)).await;
            assert_eq!(status, 403, "{} {} with Origin {bad}: {body}", req.method, req.path);
            assert!(body.contains("\"forbidden_origin\""), "{body}");
        }
    }
}

#[tokio::test]
async fn every_route_refuses_a_missing_or_wrong_token() {
    let run = start().await;
    for auth in
        [None, Some("Bearer nope".to_owned()), Some(format!("Basic {TOKEN}")), Some(format!("Bearer {}", &TOKEN[1..]))]
    {
        for mut req in routes(&run) {
            req.auth = auth.clone();
            req.path = req.path.replace(&format!("?token={TOKEN}"), "");
            let (status, body) = send(run.addr, &req, Duration::from_secs(5)).await;
            assert_eq!(status, 401, "{} {} with {auth:?}: {body}", req.method, req.path);
            assert!(body.contains("\"unauthorized\""), "{body}");
        }
    }
    // The stream with a wrong token in its URL.
    let mut req = Req::new(&run, "GET", "/api/events?token=wrong");
    req.auth = None;
    assert_eq!(send(run.addr, &req, Duration::from_secs(5)).await.0, 401);
    // A token in the URL of any other route is not accepted.
    let mut req = Req::new(&run, "GET", format!("/api/devices.list?token={TOKEN}"));
    req.auth = None;
    assert_eq!(send(run.addr, &req, Duration::from_secs(5)).await.0, 401);
}

#[tokio::test]
async fn the_right_request_is_answered_and_get_never_changes_state() {
    let run = start().await;
    let port = run.addr.port();
    let mut req = Req::new(&run, "GET", "/api/devices.list");
    req.origin = Some(Box::leak(format!("http://localhost:{port}").into_boxed_str()));
    let (status, body) = send(run.addr, &req, Duration::from_secs(5)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("pci:0000:03:00.0"), "{body}");

    // Query input travels as JSON in the query string.
    let input = "%7B%22device_id%22%3A%22cpu%22%7D";
    let (status, body) =
        send(run.addr, &Req::new(&run, "GET", format!("/api/devices.health?input={input}")), Duration::from_secs(5))
            .await;
    assert_eq!(status, 200, "{body}");

    // A mutation on GET is refused and does nothing; a query on POST is refused too.
    let before = kiln_engine::dispatch(&run.engine, "settings.get", serde_json::Value::Null).await.unwrap();
    let settings = serde_json::json!({ "telemetry": { "interval_ms": 5000, "history_minutes": 15 } });
    let encoded: String = settings.to_string().bytes().map(|b| format!("%{b:02X}")).collect();
    let (status, body) =
        send(run.addr, &Req::new(&run, "GET", format!("/api/settings.update?input={encoded}")), Duration::from_secs(5))
            .await;
    assert_eq!(status, 405, "{body}");
    assert_eq!(kiln_engine::dispatch(&run.engine, "settings.get", serde_json::Value::Null).await.unwrap(), before);
    let (status, _) = send(run.addr, &Req::new(&run, "POST", "/api/devices.list"), Duration::from_secs(5)).await;
    assert_eq!(status, 405);
    for method in ["PUT", "DELETE", "PATCH"] {
        let (status, _) = send(run.addr, &Req::new(&run, method, "/api/settings.update"), Duration::from_secs(5)).await;
        assert_eq!(status, 405, "{method}");
    }

    // Mutations take JSON only (a form post is refused), then work.
    let mut form = Req::new(&run, "POST", "/api/devices.rescan");
    form.content_type = "text/plain";
    assert_eq!(send(run.addr, &form, Duration::from_secs(5)).await.0, 400);
    let (status, body) = send(run.addr, &Req::new(&run, "POST", "/api/devices.rescan"), Duration::from_secs(10)).await;
    assert_eq!(status, 200, "{body}");

    // Errors are {code, message, details} with a matching status.
    let (status, body) = send(run.addr, &Req::new(&run, "GET", "/api/devices.nothing"), Duration::from_secs(5)).await;
    assert_eq!(status, 404);
    assert!(body.contains("\"code\":\"unknown_operation\""), "{body}");

    // The page carries a content security policy.
    let (status, body) = send(run.addr, &Req::new(&run, "GET", "/"), Duration::from_secs(5)).await;
    assert_eq!(status, 200);
    assert!(body.to_ascii_lowercase().contains("content-security-policy: default-src 'self'"), "{body}");
}

#[tokio::test]
async fn the_event_stream_delivers_engine_events() {
    let run = start().await;
    let mut req = Req::new(&run, "GET", format!("/api/events?token={TOKEN}"));
    req.auth = None;
    let engine = run.engine.clone();
    tokio::spawn(async move {
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let engine = engine.clone();
            tokio::task::spawn_blocking(move || engine.sample_now()).await.unwrap();
        }
    });
    let (status, body) = send(run.addr, &req, Duration::from_secs(3)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("text/event-stream"), "{body}");
    assert!(body.contains("event: kiln") && body.contains("\"type\":\"telemetry\""), "{body}");
}
