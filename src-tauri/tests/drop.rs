//! Files dropped on the desktop window, on Tauri's mock runtime with the real config and
//! capabilities: the window may listen to the drag-and-drop events `ui/src/api/inputs.ts`
//! (`listenPathDrops`) listens to, a drop reaches the window as the `paths` the UI reads, and
//! those paths, sent as the Upscale page sends them (`submitDrop`: one `jobs.submit` through
//! `call`), become queued jobs, folders expanded to their images, while paths outside the folders
//! Kiln may read are refused. No worker starts, so no GPU work runs: the queue's contents are
//! the result.
//!
//! What the mock runtime cannot do: deliver a window's drag-and-drop. Tauri turns
//! `WindowEvent::DragDrop` into `tauri://drag-drop` in a handler it registers with the window's
//! dispatcher (`on_window_event`, tauri 2.12 `manager/window.rs`), and the mock dispatcher's
//! `on_window_event` drops every handler unseen; its event loop only ever sends `CloseRequested`
//! and `Destroyed`. So `emit_like_the_runtime` does what that handler does, with the same event
//! names, target and payload shape. The JS listeners the window registers through IPC are real,
//! but what reaches them is a script the mock webview keeps where no public API can read it, so
//! the drop is read by a Rust listener on the same window, which the same emit reaches.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use kiln_engine::devices::telemetry::TelemetryOptions;
use kiln_engine::devices::telemetry::nvml::NvmlMode;
use kiln_engine::devices::telemetry::sysfs::SystemRoots;
use kiln_engine::{Engine, EngineOptions};
use kiln_testdir::TempDir;
use serde::Serialize;
use serde_json::{Value, json};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{INVOKE_KEY, MockRuntime, get_ipc_response, mock_builder};
use tauri::webview::InvokeRequest;
use tauri::{App, DragDropEvent, Emitter, EventTarget, Listener, PhysicalPosition, WebviewWindow};

/// The events `listenPathDrops` listens to (`TauriEvent.DRAG_DROP`, `DRAG_ENTER`, `DRAG_LEAVE`).
const DRAG_DROP: &str = "tauri://drag-drop";
const DRAG_ENTER: &str = "tauri://drag-enter";
const DRAG_LEAVE: &str = "tauri://drag-leave";

struct Desktop {
    app: App<MockRuntime>,
    window: WebviewWindow<MockRuntime>,
    data: TempDir,
}

/// The shell over an engine on a fixture machine (no NVML, no wgpu), its window made from
/// `tauri.conf.json` as the real app makes it.
fn desktop() -> Desktop {
    let machine =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../crates/engine/tests/fixtures/machines/amd-rx7900xtx");
    let data = TempDir::new();
    let engine = Engine::start(EngineOptions {
        data_dir: data.path().to_path_buf(),
        telemetry: TelemetryOptions { roots: SystemRoots::under(&machine), nvml: NvmlMode::Disabled, skip_wgpu: true },
        background_sampling: false,
    })
    .unwrap();
    let app = kiln_desktop::builder(mock_builder(), engine).build(tauri::generate_context!()).unwrap();
    let config = app.config().app.windows[0].clone();
    let window = tauri::WebviewWindowBuilder::from_config(&app, &config).unwrap().build().unwrap();
    Desktop { app, window, data }
}

/// An IPC request as `@tauri-apps/api`'s `invoke` makes it.
fn ipc(window: &WebviewWindow<MockRuntime>, cmd: &str, body: Value) -> Result<Value, Value> {
    let request = InvokeRequest {
        cmd: cmd.into(),
        callback: CallbackFn(0),
        error: CallbackFn(1),
        url: if cfg!(windows) { "http://tauri.localhost" } else { "tauri://localhost" }.parse().unwrap(),
        body: InvokeBody::Json(body),
        headers: Default::default(),
        invoke_key: INVOKE_KEY.to_string(),
    };
    get_ipc_response(window, request).map(|body| body.deserialize::<Value>().unwrap())
}

/// An engine operation as `ui/src/api/client.ts` calls it.
fn call(window: &WebviewWindow<MockRuntime>, op: &str, input: Value) -> Result<Value, Value> {
    ipc(window, "call", json!({ "op": op, "input": input }))
}

/// `listen(event, handler)` from `@tauri-apps/api/event`: no target option means `Any`, and the
/// handler is the number `transformCallback` gives it.
fn listen(window: &WebviewWindow<MockRuntime>, event: &str, handler: u32) -> Result<Value, Value> {
    ipc(window, "plugin:event|listen", json!({ "event": event, "target": { "kind": "Any" }, "handler": handler }))
}

/// Tauri's payload for the drag events (`DragDropPayload`, crate-private in tauri 2.12).
#[derive(Serialize, Clone)]
struct DragDropPayload<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    paths: Option<&'a Vec<PathBuf>>,
    position: &'a PhysicalPosition<f64>,
}

/// What tauri 2.12's `on_window_event` does with `WindowEvent::DragDrop` for a webview window
/// (`manager/window.rs`): the window's webview content reports drops as window events
/// (tauri-runtime-wry's `SynthesizedWindowEvent::DragDrop`), emitted to every target labelled
/// as the window.
fn emit_like_the_runtime(window: &WebviewWindow<MockRuntime>, event: &DragDropEvent) {
    let target = EventTarget::labeled(window.label());
    let emitted = match event {
        DragDropEvent::Enter { paths, position } => {
            window.emit_to(target, DRAG_ENTER, DragDropPayload { paths: Some(paths), position })
        }
        DragDropEvent::Drop { paths, position } => {
            window.emit_to(target, DRAG_DROP, DragDropPayload { paths: Some(paths), position })
        }
        DragDropEvent::Leave => window.emit_to(target, DRAG_LEAVE, ()),
        other => panic!("the UI does not listen to {other:?}"),
    };
    emitted.unwrap();
}

/// Drops `paths` on the window and returns what the UI reads from the drop: `e.payload.paths`.
fn drop_on(window: &WebviewWindow<MockRuntime>, paths: &[PathBuf]) -> Vec<String> {
    let (tx, rx) = mpsc::channel();
    let id = window.listen(DRAG_DROP, move |event| tx.send(event.payload().to_owned()).unwrap());
    let position = PhysicalPosition::new(420.0, 300.0);
    emit_like_the_runtime(window, &DragDropEvent::Drop { paths: paths.to_vec(), position });
    window.unlisten(id);
    let payload: Value = serde_json::from_str(&rx.recv_timeout(Duration::from_secs(5)).unwrap()).unwrap();
    payload["paths"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_owned()).collect()
}

/// What the Upscale page sends for a drop of OS paths with its default choices: `submission`
/// (ui/src/components/upscale-settings.tsx) of `DEFAULTS`, each path as `toInput` makes it
/// (`fromPaths` names no folder, so no `batch_name`), in one request (`chunks` counts no bytes
/// for paths). `JSON.stringify` leaves the `undefined` fields out.
fn upscale_drop(paths: &[String]) -> Value {
    json!({
        "steps": [{
            "kind": "upscale", "size": { "by": "model" }, "format": "png", "quality": 92,
            "alpha": "model", "tta": false, "precision": "auto",
        }],
        "recursive": true,
        "priority": 0,
        "inputs": paths.iter().map(|path| json!({ "from": "path", "path": path })).collect::<Vec<_>>(),
    })
}

/// A real PNG (the upscaler tests' input) at `path`.
fn image_at(path: &Path) -> PathBuf {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/engine/tests/fixtures/upscalers/ncnn_input.png");
    std::fs::copy(fixture, path).unwrap();
    path.canonicalize().unwrap()
}

/// Settings as the Settings page saves them: results in the data folder (not the machine's
/// real Pictures folder), and `pictures` a folder Kiln may read.
fn allow(window: &WebviewWindow<MockRuntime>, data: &Path, pictures: &Path) {
    let mut settings = call(window, "settings.get", Value::Null).unwrap();
    settings["processing"]["output_dir"] = json!(data.join("out"));
    settings["processing"]["allowed_roots"] = json!([pictures]);
    call(window, "settings.update", settings).unwrap();
}

fn queued_inputs(window: &WebviewWindow<MockRuntime>) -> Vec<String> {
    let list = call(window, "jobs.list", json!({ "states": [] })).unwrap();
    let jobs = list["jobs"].as_array().unwrap();
    assert!(jobs.iter().all(|job| job["state"] == json!("queued")), "{list:#}");
    let mut inputs: Vec<String> = jobs.iter().map(|job| job["spec"]["input"].as_str().unwrap().to_owned()).collect();
    inputs.sort();
    inputs
}

fn strings(paths: &[PathBuf]) -> Vec<String> {
    let mut strings: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    strings.sort();
    strings
}

/// The capability lets the window listen to (and stop listening to) the three drag events, so a
/// drop never fails silently in the UI's `listen` promise; the refusals beside show the check
/// is real: the capability grants no `emit`, and a window it does not name gets nothing.
#[test]
fn the_window_may_listen_to_the_drag_events_the_ui_listens_to() {
    let desktop = desktop();
    let window = &desktop.window;
    let config = &desktop.app.config().app.windows[0];
    assert_eq!(config.label, "main");
    // Off, the webview would take drops itself and the UI, which ignores the browser's drop
    // inside the app, would take nothing.
    assert!(config.drag_drop_enabled, "tauri.conf.json must leave dragDropEnabled on");

    for (handler, event) in [DRAG_DROP, DRAG_ENTER, DRAG_LEAVE].into_iter().enumerate() {
        let id = listen(window, event, 10 + handler as u32).unwrap_or_else(|e| panic!("listen to {event}: {e}"));
        assert!(id.is_u64(), "listen answers the listener's id: {id}");
        // The unlisten function `listen` resolves to, as the page calls it when it unmounts.
        ipc(window, "plugin:event|unlisten", json!({ "event": event, "eventId": id })).unwrap();
        listen(window, event, 20 + handler as u32).unwrap();
    }

    let emit = ipc(window, "plugin:event|emit", json!({ "event": DRAG_DROP, "payload": { "paths": ["/etc"] } }));
    assert!(emit.is_err(), "the window may not emit events: {emit:?}");
    let other = tauri::WebviewWindowBuilder::new(&desktop.app, "other", Default::default()).build().unwrap();
    assert!(listen(&other, DRAG_DROP, 30).is_err(), "only the window the capability names may listen");
}

/// The payload a drop carries is what `listenPathDrops` reads: `paths`, as the dropped OS
/// paths; entering and leaving reach the window too (they light and clear the drop zone).
#[test]
fn a_drop_reaches_the_window_as_the_paths_the_ui_reads() {
    let desktop = desktop();
    let window = &desktop.window;
    listen(window, DRAG_DROP, 10).unwrap();
    let (tx, rx) = mpsc::channel();
    for event in [DRAG_ENTER, DRAG_DROP, DRAG_LEAVE] {
        let tx = tx.clone();
        window.listen(event, move |e| tx.send((event, e.payload().to_owned())).unwrap());
    }
    let paths = vec![desktop.data.path().join("a photo.png"), desktop.data.path().join("album")];
    let position = PhysicalPosition::new(420.0, 300.0);

    emit_like_the_runtime(window, &DragDropEvent::Enter { paths: paths.clone(), position });
    emit_like_the_runtime(window, &DragDropEvent::Drop { paths: paths.clone(), position });
    emit_like_the_runtime(window, &DragDropEvent::Leave);

    let mut seen = Vec::new();
    for _ in 0..3 {
        let (event, payload) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
        seen.push((event, serde_json::from_str::<Value>(&payload).unwrap()));
    }
    let dropped = json!(paths);
    assert_eq!(seen[0], (DRAG_ENTER, json!({ "paths": dropped, "position": { "x": 420.0, "y": 300.0 } })));
    assert_eq!(seen[1], (DRAG_DROP, json!({ "paths": dropped, "position": { "x": 420.0, "y": 300.0 } })));
    assert_eq!(seen[2], (DRAG_LEAVE, Value::Null));
}

/// Dropped files and folders, sent as the Upscale page sends them, are queued through IPC: a
/// folder expands to its images, its sub-folders' too (the page's default), other files in it
/// passed over; the batch takes the folder's name. Unchecked, "Include sub-folders" keeps a
/// folder's own images only.
#[test]
fn dropped_files_and_folders_become_queued_jobs() {
    let desktop = desktop();
    let window = &desktop.window;
    let pictures = TempDir::new();
    allow(window, desktop.data.path(), pictures.path());
    let photo = image_at(&pictures.path().join("photo.png"));
    let album = pictures.path().join("album");
    let one = image_at(&album.join("one.png"));
    let nested = image_at(&album.join("nested/three.png"));
    std::fs::write(album.join("notes.txt"), "not an image").unwrap();

    let paths = drop_on(window, &[photo.clone(), album.clone()]);
    assert_eq!(paths, [photo.display().to_string(), album.display().to_string()]);
    let submitted = call(window, "jobs.submit", upscale_drop(&paths)).unwrap();

    assert_eq!(submitted["skipped"], json!([]), "{submitted:#}");
    let jobs = submitted["jobs"].as_array().unwrap();
    let names: Vec<&str> = jobs.iter().map(|job| job["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["photo.png", "three.png", "one.png"], "{submitted:#}");
    assert_eq!(queued_inputs(window), strings(&[photo.clone(), one.clone(), nested]));
    let list = call(window, "jobs.list", json!({ "states": [] })).unwrap();
    assert_eq!(list["batches"][0]["name"], json!("album"));
    assert!(jobs.iter().all(|job| job["batch_id"] == submitted["batch_id"]), "{submitted:#}");
    let out = desktop.data.path().join("out").canonicalize().unwrap();
    assert!(jobs.iter().all(|job| job["spec"]["output_dir"] == json!(out)), "{submitted:#}");

    let mut own_only = upscale_drop(&[album.display().to_string()]);
    own_only["recursive"] = json!(false);
    let submitted = call(window, "jobs.submit", own_only).unwrap();
    assert_eq!(submitted["jobs"][0]["spec"]["input"], json!(one), "{submitted:#}");
    assert_eq!(submitted["jobs"].as_array().unwrap().len(), 1, "{submitted:#}");
}

/// A drop of paths outside the folders Kiln may read queues nothing of them: a system file, and
/// an image reached with `..` from an allowed folder, come back skipped with the engine's reason
/// while the rest of the drop goes on. An output folder outside them fails the whole drop with
/// the typed `permission_denied`.
#[test]
fn dropped_paths_outside_the_allowed_folders_are_refused() {
    let desktop = desktop();
    let window = &desktop.window;
    let pictures = TempDir::new();
    let elsewhere = TempDir::new();
    allow(window, desktop.data.path(), pictures.path());
    let photo = image_at(&pictures.path().join("photo.png"));
    let secret = image_at(&elsewhere.path().join("secret.png"));
    let home = std::env::home_dir().and_then(|home| home.canonicalize().ok());
    assert!(
        home.is_none_or(|home| !secret.starts_with(&home) && !Path::new("/etc").starts_with(&home)),
        "the test needs a temporary folder outside the home folder, which Kiln may always read"
    );
    let escape = pictures.path().join("..").join(elsewhere.path().file_name().unwrap()).join("secret.png");
    assert!(escape.exists());

    let paths = drop_on(window, &[photo.clone(), PathBuf::from("/etc/passwd"), escape.clone()]);
    let submitted = call(window, "jobs.submit", upscale_drop(&paths)).unwrap();

    let skipped = submitted["skipped"].as_array().unwrap();
    let refused: Vec<&str> = skipped.iter().map(|s| s["input"].as_str().unwrap()).collect();
    assert_eq!(refused, ["/etc/passwd", escape.to_str().unwrap()], "{submitted:#}");
    assert!(skipped.iter().all(|s| s["reason"].as_str().unwrap().contains("outside the folders Kiln may read")));
    assert_eq!(queued_inputs(window), strings(&[photo]));

    let mut outside = upscale_drop(&paths[..1]);
    outside["output_dir"] = json!("/etc/kiln");
    let error = call(window, "jobs.submit", outside).unwrap_err();
    assert_eq!(error["code"], json!("permission_denied"), "{error:#}");
    assert!(!Path::new("/etc/kiln").exists());
    assert_eq!(queued_inputs(window).len(), 1);
}
