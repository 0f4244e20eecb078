//! Writes the UI's TypeScript types (`ui/src/generated/kiln.ts`) from the engine's Rust types.
//! `--check` only compares, and exits 1 when the file is stale.

fn main() {
    let path = kiln_engine::api::typegen::output_path();
    let text = kiln_engine::api::typegen::render();
    let check = std::env::args().any(|a| a == "--check");
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    if check {
        if current != text {
            eprintln!("{} is stale: run `cargo run -p kiln-engine --bin kiln-typegen`", path.display());
            std::process::exit(1);
        }
        return;
    }
    if current != text {
        std::fs::create_dir_all(path.parent().expect("the output has a folder")).expect("create ui/src/generated");
        std::fs::write(&path, text).expect("write the generated types");
        println!("wrote {}", path.display());
    }
}
