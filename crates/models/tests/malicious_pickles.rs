//! The malicious pickle suite (issue 16): every file of `tests/fixtures/malicious`, written by
//! `scripts/fixtures/malicious_pickles.py` from hand-assembled opcodes, goes through each way
//! Kiln opens a model (the pickle reader on the bytes, `formats::read` that the engine's weight
//! loader calls, `inspect` and `scan` behind the library, `convert::to_safetensors`) and must be
//! refused with the error its manifest names, with no payload's marker file appearing.

use std::path::{Path, PathBuf};

use kiln_models::formats::{self, ModelFormat, torch};
use kiln_models::{ModelError, ModelErrorKind, convert, inspect, scan};
use serde::Deserialize;

#[derive(Deserialize)]
struct Manifest {
    payloads: Vec<Payload>,
}

#[derive(Deserialize)]
struct Payload {
    file: String,
    category: String,
    trick: String,
    callable: String,
    refused: Refusal,
    /// The file the payload's call would create in the working directory.
    marker: String,
}

/// How Kiln must refuse a file.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Refusal {
    /// The exact name `ModelErrorKind::ForbiddenGlobal` carries, also in the message.
    ForbiddenGlobal {
        global: String,
    },
    /// A fragment of the reason.
    Malformed {
        reason: String,
    },
    Unsupported {
        reason: String,
    },
}

impl Refusal {
    /// Why `error` is not this refusal, if it is not.
    fn mismatch(&self, error: &ModelError) -> Option<String> {
        let matches = match (self, &error.kind) {
            (Self::ForbiddenGlobal { global }, ModelErrorKind::ForbiddenGlobal(name)) => {
                name == global && error.to_string().contains(global.as_str())
            }
            (Self::Malformed { reason }, ModelErrorKind::Malformed { reason: said, .. }) => {
                said.contains(reason.as_str())
            }
            (Self::Unsupported { reason }, ModelErrorKind::Unsupported(said)) => said.contains(reason.as_str()),
            _ => false,
        };
        (!matches).then(|| format!("wanted {self:?}, got {:?} ({error})", error.kind))
    }
}

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/malicious")
}

fn manifest() -> Manifest {
    let text = std::fs::read_to_string(fixtures().join("manifest.json")).expect("read manifest.json");
    serde_json::from_str(&text).expect("parse manifest.json")
}

/// Markers found in `folders`: a payload that ran leaves one.
fn markers(payloads: &[Payload], folders: &[&Path]) -> Vec<PathBuf> {
    let candidates = payloads.iter().flat_map(|p| folders.iter().map(move |f| f.join(&p.marker)));
    candidates.filter(|path| path.exists()).collect()
}

#[test]
fn the_suite_holds_fifty_payloads_at_least_and_every_file_is_listed() {
    let manifest = manifest();
    assert!(manifest.payloads.len() >= 50, "only {} payloads", manifest.payloads.len());
    let mut listed: Vec<&str> = manifest.payloads.iter().map(|p| p.file.as_str()).collect();
    listed.push("manifest.json");
    listed.sort_unstable();
    let mut present: Vec<String> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    present.sort_unstable();
    assert_eq!(present, listed, "regenerate with scripts/fixtures/malicious_pickles.py");
    for payload in &manifest.payloads {
        assert!(!payload.category.is_empty() && !payload.trick.is_empty() && !payload.callable.is_empty());
        assert!(payload.marker.starts_with("PWNED-"), "{}", payload.file);
    }
}

#[test]
fn every_malicious_pickle_is_refused_by_every_door_and_runs_nothing() {
    let manifest = manifest();
    let dir = fixtures();
    let out = kiln_testdir::TempDir::new();
    let cwd = std::env::current_dir().unwrap();
    let folders = [cwd.as_path(), dir.as_path(), out.path()];
    assert_eq!(markers(&manifest.payloads, &folders), Vec::<PathBuf>::new(), "markers left from an earlier run");

    let mut failures = Vec::new();
    for payload in &manifest.payloads {
        let path = dir.join(&payload.file);
        let bytes = std::fs::read(&path).unwrap();
        let mut check = |door: &str, expected: &Refusal, result: Result<(), ModelError>| match result {
            Ok(()) => failures.push(format!("{}: {door} loaded it ({})", payload.file, payload.trick)),
            Err(error) => {
                if let Some(why) = expected.mismatch(&error) {
                    failures.push(format!("{}: {door}: {why}", payload.file));
                }
            }
        };
        // The pickle reader on the bytes, whatever the file is called.
        check("torch::read_bytes", &payload.refused, torch::read_bytes(&path, &bytes).map(drop));
        // By path, a name Kiln does not open as a model (`.bin`) stops before any byte is read.
        let by_path = match ModelFormat::of_path(&path) {
            Some(_) => payload.refused.clone(),
            None => Refusal::Unsupported { reason: "not a model file Kiln recognises".into() },
        };
        check("formats::read", &by_path, formats::read(&path).map(drop));
        check("inspect", &by_path, inspect(&path).map(drop));
        let converted = out.path().join(&payload.file).with_extension("safetensors");
        check("convert::to_safetensors", &by_path, convert::to_safetensors(&path, &converted).map(drop));
        if converted.exists() || converted.with_extension("safetensors.partial").exists() {
            failures.push(format!("{}: convert left a file behind", payload.file));
        }
    }
    // The library's folder scan lists every file it recognises, each with its error.
    let recognised = manifest.payloads.iter().filter(|p| ModelFormat::of_path(&dir.join(&p.file)).is_some()).count();
    let scanned = scan::scan(&dir);
    assert_eq!(scanned.len(), recognised, "scan listed other files than the payloads it recognises");
    for info in scanned.into_iter().flatten() {
        failures.push(format!("scan read {} as {}", info.path, info.label));
    }

    assert!(failures.is_empty(), "{} refusals went wrong:\n{}", failures.len(), failures.join("\n"));
    assert_eq!(markers(&manifest.payloads, &folders), Vec::<PathBuf>::new(), "a payload ran");
}
