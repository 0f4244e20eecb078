//! `kiln upscale` as a user runs it, and the queue's crash safety with a real process killed
//! by SIGKILL mid-batch: nothing finished is lost, and the interrupted job runs again when Kiln
//! starts next (here `kiln serve`, whose workers take the whole queue).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kiln_engine::postprocessing::images::{self, OutputFormat};
use kiln_engine::processing::JobState;
use kiln_engine::processing::store::{JobFilter, Store};

/// The top-left 32×32 pixels of the engine's 96×96 fixture image, as a PNG at `path`: a ninth of
/// the pixels, so each run on lavapipe takes seconds where the whole image took minutes.
fn fixture_image(path: &Path) {
    let fixture = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../engine/tests/fixtures/upscalers/ncnn_input.png");
    let piece = images::decode_file(&fixture).unwrap().image.crop_imm(0, 0, 32, 32);
    images::write(&piece, path, OutputFormat::Png, 100, &Default::default()).unwrap();
}

fn kiln(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kiln"));
    let run = data.join("run");
    std::fs::create_dir_all(&run).unwrap();
    command.env("KILN_DATA_DIR", data).env("XDG_RUNTIME_DIR", run);
    command
}

fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    (u32::from_be_bytes(bytes[16..20].try_into().unwrap()), u32::from_be_bytes(bytes[20..24].try_into().unwrap()))
}

#[test]
fn outputs_are_named_after_inputs_and_bad_inputs_are_reported() {
    let data = kiln_testdir::TempDir::new();
    let inputs = data.path().join("in");
    std::fs::create_dir_all(inputs.join("sub")).unwrap();
    fixture_image(&inputs.join("photo.png"));
    fixture_image(&inputs.join("sub/scan.png"));
    std::fs::write(inputs.join("notes.txt"), "not an image").unwrap();
    let out = data.path().join("out");
    let run = kiln(data.path())
        .args(["upscale", "--recursive", "--scale", "2", "--tile", "64", "-o"])
        .arg(&out)
        .arg(&inputs)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(run.status.success(), "{stderr}");
    assert_eq!(png_size(&out.join("photo_x2.png")), (64, 64));
    assert_eq!(png_size(&out.join("scan_x2.png")), (64, 64));
    assert!(stderr.contains("2 done, 0 failed"), "{stderr}");

    let missing = kiln(data.path()).args(["upscale", "/nonexistent/photo.png"]).output().unwrap();
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("/nonexistent/photo.png"), "{stderr}");
}

fn jobs(store: &Store) -> Vec<kiln_engine::processing::Job> {
    store.list(&JobFilter::default()).unwrap()
}

fn wait(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < timeout, "waited {timeout:?} for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_run_killed_mid_batch_loses_nothing_and_resumes_on_the_next_start() {
    let data = kiln_testdir::TempDir::new();
    let inputs: Vec<PathBuf> = (1..=3).map(|i| data.path().join(format!("image{i}.png"))).collect();
    for input in &inputs {
        fixture_image(input);
    }
    let out = data.path().join("out");
    // Small tiles on the software GPU: many slow heartbeats per image (5×5 tiles), so the kill
    // lands inside a job (on the CPU backend, where unpinned jobs go, an image takes a blink).
    let gpu = software_gpu(data.path());
    let mut cli = KillOnDrop(
        kiln(data.path())
            .args(["upscale", "--device", &gpu, "--tile", "24", "-o"])
            .arg(&out)
            .args(&inputs)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let db = data.path().join("queue.db");
    wait("the queue", Duration::from_secs(120), || db.exists());
    let store = Store::open(&db).unwrap();
    wait("one job done and the next under way", Duration::from_secs(900), || {
        let jobs = jobs(&store);
        jobs.iter().any(|j| j.state == JobState::Done)
            && jobs.iter().any(|j| j.state == JobState::Running && j.progress > 0.0)
    });
    cli.0.kill().unwrap(); // SIGKILL
    cli.0.wait().unwrap();

    let after_kill = jobs(&store);
    assert_eq!(after_kill.len(), 3, "every job is still in the queue");
    let done: Vec<_> = after_kill.iter().filter(|j| j.state == JobState::Done).collect();
    let interrupted = after_kill.iter().find(|j| j.state == JobState::Running).expect("the job the kill interrupted");
    for job in &done {
        assert!(Path::new(job.output().unwrap()).exists(), "a finished result is on disk");
    }

    // The next start of Kiln takes the interrupted job back and runs what is left.
    let _serve = KillOnDrop(
        kiln(data.path()).args(["serve", "--port", "0"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
    );
    wait("every job done after the restart", Duration::from_secs(900), || {
        jobs(&store).iter().all(|j| j.state == JobState::Done)
    });
    let log = store.log_of(interrupted.id).unwrap();
    assert!(log.iter().any(|l| l.message.starts_with("interrupted")), "{log:?}");
    for name in ["image1_x4.png", "image2_x4.png", "image3_x4.png"] {
        assert_eq!(png_size(&out.join(name)), (128, 128), "{name}");
    }
}

/// The id of the software GPU in `kiln devices --json`.
fn software_gpu(data: &Path) -> String {
    let listing = kiln(data).args(["devices", "--json"]).output().unwrap();
    assert!(listing.status.success(), "{}", String::from_utf8_lossy(&listing.stderr));
    let json: serde_json::Value = serde_json::from_slice(&listing.stdout).unwrap();
    fn find(value: &serde_json::Value) -> Option<String> {
        match value {
            serde_json::Value::Object(map) if map.get("kind").and_then(|k| k.as_str()) == Some("software_gpu") => {
                map.get("id").and_then(|id| id.as_str()).map(str::to_owned)
            }
            serde_json::Value::Object(map) => map.values().find_map(find),
            serde_json::Value::Array(items) => items.iter().find_map(find),
            _ => None,
        }
    }
    find(&json).expect("lavapipe is installed (scripts/setup-system.sh)")
}

/// `kiln serve` stopped with SIGTERM (what a service manager or a test harness sends) while a
/// job runs on the software GPU: it exits 0, prints nothing of errors, aborts or a corrupted
/// heap (the GPU driver's threads once raced the C library's exit handlers), not even the
/// Wayland probe's `error:` lines without a runtime folder, and the job is back in the queue at
/// its step, for the next start.
#[test]
fn serve_ends_cleanly_on_sigterm_with_a_job_on_the_software_gpu() {
    use kiln_engine::postprocessing::upscale::UpscaleSettings;
    use kiln_engine::processing::store::NewJob;
    use kiln_engine::processing::{JobSpec, Step};

    let data = kiln_testdir::TempDir::new();
    let input = data.path().join("photo.png");
    fixture_image(&input);
    let gpu = software_gpu(data.path());
    let store = Store::open(&data.path().join("queue.db")).unwrap();
    // Small tiles: many tiles (5×5) so the signal lands inside the job. A job put in the store
    // directly names its model (the queue's submit resolves the bundled one).
    let model = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../assets/models/realesr-animevideov3-x4/realesr-animevideov3-x4.param")
        .canonicalize()
        .unwrap();
    let settings =
        UpscaleSettings { tile: Some(24), model: Some(model.display().to_string()), ..UpscaleSettings::default() };
    let spec = JobSpec {
        input: input.display().to_string(),
        steps: vec![Step::Upscale(settings)],
        output_dir: data.path().join("out").display().to_string(),
    };
    let new = NewJob {
        name: "photo.png".into(),
        spec,
        priority: 0,
        device_request: Some(kiln_engine::devices::DeviceId(gpu)),
        session_id: None,
    };
    let (_, submitted) = store.submit(&[new], None).unwrap();
    let id = submitted[0].id;

    let serve = kiln(data.path())
        .env_remove("XDG_RUNTIME_DIR")
        .args(["serve", "--port", "0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut serve = KillOnDrop(serve);
    wait("the job under way on the software GPU", Duration::from_secs(900), || {
        store.get(id).unwrap().is_some_and(|j| (j.state == JobState::Running && j.progress > 0.0) || j.state.is_final())
    });
    let job = store.get(id).unwrap().unwrap();
    assert_eq!(job.state, JobState::Running, "{job:?}");
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(serve.0.id() as i32, libc::SIGTERM) }, 0);
    let mut status = None;
    wait("kiln serve to end after SIGTERM", Duration::from_secs(120), || {
        status = serve.0.try_wait().unwrap();
        status.is_some()
    });
    let mut stderr = String::new();
    std::io::Read::read_to_string(serve.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.unwrap().code(), Some(0), "{stderr}");
    for bad in ["error", "ERROR", "panicked", "Aborted", "corrupted", "free()", "malloc"] {
        assert!(!stderr.contains(bad), "stderr says {bad:?}:\n{stderr}");
    }
    let job = store.get(id).unwrap().unwrap();
    assert_eq!(job.state, JobState::Queued, "back in the queue for the next start");
    let log = store.log_of(id).unwrap();
    assert!(log.iter().any(|l| l.message.starts_with("interrupted: Kiln stopped")), "{log:?}");
}
