//! Kiln's desktop shell: a Tauri 2 window onto the engine. It holds no logic: the one command,
//! `call`, hands an operation name and its JSON input to the engine's `dispatch` (the same
//! function the HTTP door calls), and engine events are forwarded to the window as
//! `kiln://event`.

use kiln_engine::{ApiError, Engine, EngineOptions};
use tauri::{Emitter, Manager, Runtime};

/// The window's event name for engine events.
pub const EVENT: &str = "kiln://event";

/// Runs an engine operation for the UI.
#[tauri::command]
async fn call(
    engine: tauri::State<'_, Engine>,
    op: String,
    input: serde_json::Value,
) -> Result<serde_json::Value, ApiError> {
    kiln_engine::dispatch(&engine, &op, input).await
}

/// The shell around an engine, for any Tauri runtime (the real one, or the mock in tests).
pub fn builder<R: Runtime>(builder: tauri::Builder<R>, engine: Engine) -> tauri::Builder<R> {
    builder.manage(engine).invoke_handler(tauri::generate_handler![call]).setup(|app| {
        let handle = app.handle().clone();
        let mut events = app.state::<Engine>().subscribe();
        tauri::async_runtime::spawn(async move {
            use tokio::sync::broadcast::error::RecvError;
            loop {
                match events.recv().await {
                    Ok(event) => {
                        let _ = handle.emit(EVENT, &event);
                    }
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => break,
                }
            }
        });
        Ok(())
    })
}

pub fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KILN_LOG")
                .unwrap_or_else(|_| kiln_engine::LOG_DEFAULTS.into()),
        )
        .init();
    let engine = match Engine::start(EngineOptions::standard()) {
        Ok(engine) => engine,
        Err(error) => {
            eprintln!("Kiln could not start: {} ({:?})", error.message, error.code);
            kiln_engine::process::exit_now(1);
        }
    };
    engine.start_workers(kiln_engine::processing::store::Scope::All);
    let app = builder(tauri::Builder::default(), engine.clone())
        .build(tauri::generate_context!())
        .expect("the Tauri runtime failed");
    // SIGINT and SIGTERM close the app as closing its window does.
    let handle = app.handle().clone();
    tauri::async_runtime::spawn(async move {
        kiln_engine::process::stop_signal().await;
        handle.exit(0);
    });
    app.run(move |_, event| {
        // The window closed or a stop signal came: running jobs go back to the queue and the
        // process ends without exit handlers (`Engine::exit`), before Tauri's own exit.
        if let tauri::RunEvent::Exit = event {
            engine.exit(0);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_engine::devices::telemetry::TelemetryOptions;
    use kiln_engine::devices::telemetry::nvml::NvmlMode;
    use kiln_engine::devices::telemetry::sysfs::SystemRoots;
    use serde_json::{Value, json};
    use tauri::ipc::{CallbackFn, InvokeBody};
    use tauri::test::{INVOKE_KEY, get_ipc_response, mock_builder};
    use tauri::webview::InvokeRequest;

    fn invoke(cmd: &str, body: Value) -> InvokeRequest {
        InvokeRequest {
            cmd: cmd.into(),
            callback: CallbackFn(0),
            error: CallbackFn(1),
            url: if cfg!(windows) { "http://tauri.localhost" } else { "tauri://localhost" }.parse().unwrap(),
            body: InvokeBody::Json(body),
            headers: Default::default(),
            invoke_key: INVOKE_KEY.to_string(),
        }
    }

    /// The real context (config, capabilities, embedded UI) on the mock runtime.
    #[test]
    fn a_device_command_runs_through_ipc_under_the_real_capabilities() {
        let machine = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../crates/engine/tests/fixtures/machines/amd-rx7900xtx");
        let data = kiln_testdir::TempDir::new();
        let engine = Engine::start(EngineOptions {
            data_dir: data.path().to_path_buf(),
            telemetry: TelemetryOptions {
                roots: SystemRoots::under(&machine),
                nvml: NvmlMode::Disabled,
                skip_wgpu: true,
            },
            background_sampling: false,
        })
        .unwrap();
        let app = builder(mock_builder(), engine).build(tauri::generate_context!()).unwrap();
        let webview = tauri::WebviewWindowBuilder::new(&app, "main", Default::default()).build().unwrap();

        let list = get_ipc_response(&webview, invoke("call", json!({ "op": "devices.list", "input": null })))
            .expect("devices.list through IPC")
            .deserialize::<Value>()
            .unwrap();
        assert_eq!(list["devices"][0]["id"], json!("pci:0000:03:00.0"));

        // Engine errors cross as {code, message, details}.
        let error = get_ipc_response(
            &webview,
            invoke("call", json!({ "op": "devices.status", "input": { "device_id": "nope" } })),
        )
        .unwrap_err();
        assert_eq!(error["code"], json!("not_found"));

        // Nothing outside the capability is reachable: an unregistered command and a plugin
        // command the UI does not use are both refused.
        assert!(get_ipc_response(&webview, invoke("delete_everything", json!({}))).is_err());
        assert!(get_ipc_response(&webview, invoke("plugin:fs|read_file", json!({ "path": "/etc/passwd" }))).is_err());
    }
}
