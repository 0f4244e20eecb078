//! Declares the app's one command so the capability file can grant exactly it.
fn main() {
    tauri_build::try_build(
        tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(&["call"])),
    )
    .expect("tauri-build");
}
