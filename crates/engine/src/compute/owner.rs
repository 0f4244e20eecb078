//! One owner per device: the thread that runs all of Kiln's burn and cubecl work on one burn
//! device, and the watchdog that reports work there that stops making progress.
//!
//! burn's fusion keeps one stream of operations per calling thread, and cubecl serves every
//! stream of a device on one runner. Two threads' streams meeting on one device inside cubecl
//! hung Kiln twice (2026-12-06: a `conv2d` autotune holding the device while another stream
//! waited on its read; issue 16: a tile's `float_add` in cubecl's enqueue retry loop while a
//! release waited on its sync). So no two threads ever touch a device's tensors: every piece of
//! work for a device (a job's tiles, a model's upload and its weights' drop, pool readings and
//! releases, the benchmark) is a closure sent to that device's owner thread, which runs them one
//! at a time, on one stream.
//!
//! Two queues: short requests (a reading, a release) go before any queued long work and also
//! between a long work's steps, which call [`between_steps`] (the tiler does after each tile),
//! so the UI waits for a tile, never for a whole job. Owners are per process, keyed by the
//! compute target, so two engines in one process (tests) still share one owner per device.
//!
//! The watchdog: each piece of work says what its first step should take; after that the
//! longest step seen so far is what the next is expected to take. A step silent for its expected
//! time plus a grace is a stall: the owner's current and recent operations go to the log, the
//! work's caller gets [`ComputeError::Stalled`] (a job fails with `device_stalled`), new work for
//! the device is refused at once while it lasts, and [`DeviceOwner::stall`] tells the device's
//! health. Other devices' owners go on. When the stuck call returns, the owner serves again.

use std::cell::RefCell;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak, mpsc};
use std::time::{Duration, Instant};

use burn::tensor::Device;

use super::{ComputeError, burn_device, guarded};
use crate::devices::discovery::ComputeTarget;

/// Which queue a piece of work joins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// A short request (a pool reading, a release, a model's weights to drop): before any
    /// queued long work, and between a running long work's steps.
    Short,
    /// Long work (a job, a model upload, the benchmark): in the order it came.
    Long,
}

/// What a piece of work is expected to take, for the watchdog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expected {
    /// Until the first step ends (or the whole work, for work without steps): a first tile
    /// includes compiling and tuning its kernels.
    pub first_step: Duration,
    /// How much longer than expected a step may be silent before it counts as a stall.
    pub grace: Duration,
}

impl Expected {
    /// The grace the issue that brought the watchdog asks for: 60 s beyond the expected time.
    pub const GRACE: Duration = Duration::from_secs(60);

    pub fn new(first_step: Duration) -> Self {
        Self { first_step, grace: Self::GRACE }
    }

    /// A short request: readings and releases take milliseconds on a GPU and seconds on a
    /// software rasteriser.
    pub fn short() -> Self {
        Self::new(Duration::from_secs(30))
    }

    pub fn with_grace(self, grace: Duration) -> Self {
        Self { grace, ..self }
    }
}

/// A device's work that stopped making progress.
#[derive(Debug, Clone, PartialEq)]
pub struct Stall {
    /// The work that went silent (`job 12 upscale`, `pool reading`).
    pub what: String,
    /// How long it had been silent when the watchdog saw it.
    pub silent: Duration,
    /// What it was allowed.
    pub limit: Duration,
}

impl Stall {
    pub fn describe(&self) -> String {
        format!(
            "the device stopped answering: {} made no progress for {:.0} s (expected within {:.0} s)",
            self.what,
            self.silent.as_secs_f64(),
            self.limit.as_secs_f64()
        )
    }
}

type Work = Box<dyn FnOnce(&Device) + Send>;

struct Task {
    what: String,
    expected: Expected,
    /// Set by a caller that stopped waiting (a stall): the task is skipped if not yet begun.
    abandoned: Arc<AtomicBool>,
    work: Work,
}

/// One piece of work as the watchdog sees it.
struct Running {
    what: String,
    expected: Expected,
    last_beat: Instant,
    longest_step: Option<Duration>,
}

impl Running {
    fn limit(&self) -> Duration {
        self.longest_step.unwrap_or(self.expected.first_step) + self.expected.grace
    }
}

#[derive(Default)]
struct Queues {
    short: VecDeque<Task>,
    long: VecDeque<Task>,
    closed: bool,
}

struct Shared {
    name: String,
    device: Device,
    queues: Mutex<Queues>,
    queued: Condvar,
    /// The work running now, innermost last (short requests run inside a long work's step).
    running: Mutex<Vec<Running>>,
    stall: Mutex<Option<Stall>>,
    /// The last operations that finished, newest last, for the log when a stall comes.
    recent: Mutex<VecDeque<String>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

thread_local! {
    /// The owner whose thread this is, on owner threads.
    static THIS_OWNER: RefCell<Option<Arc<Shared>>> = const { RefCell::new(None) };
}

fn this_owner() -> Option<Arc<Shared>> {
    THIS_OWNER.with(|o| o.borrow().clone())
}

/// Says that the running work finished a step (a tile) and serves the short requests that
/// came meanwhile. Called on an owner thread by work that runs in steps; elsewhere it does
/// nothing, so code shared with tests that run on their own thread may call it freely.
pub fn between_steps() {
    if let Some(shared) = this_owner() {
        shared.beat();
        shared.serve_short();
        shared.beat();
    }
}

impl Shared {
    fn beat(&self) {
        if let Some(running) = lock(&self.running).last_mut() {
            let step = running.last_beat.elapsed();
            running.longest_step = Some(running.longest_step.map_or(step, |l| l.max(step)));
            running.last_beat = Instant::now();
        }
        self.progressed();
    }

    fn serve_short(&self) {
        loop {
            let Some(task) = lock(&self.queues).short.pop_front() else { return };
            self.run(task);
        }
    }

    fn run(&self, task: Task) {
        if task.abandoned.load(Ordering::Relaxed) {
            return;
        }
        lock(&self.running).push(Running {
            what: task.what.clone(),
            expected: task.expected,
            last_beat: Instant::now(),
            longest_step: None,
        });
        let started = Instant::now();
        // The work reports its own panics to its caller (see `submit`); this only keeps the
        // owner alive if one escapes.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| (task.work)(&self.device)));
        lock(&self.running).pop();
        self.progressed();
        let mut recent = lock(&self.recent);
        recent.push_back(format!("{} ({:.2} s)", task.what, started.elapsed().as_secs_f64()));
        if recent.len() > 12 {
            recent.pop_front();
        }
    }

    /// Work finished or finished a step: whatever stall was seen is over.
    fn progressed(&self) {
        if let Some(stall) = lock(&self.stall).take() {
            tracing::warn!("{}: answering again after the stall of {}", self.name, stall.what);
        }
    }

    /// The watchdog's check: the innermost running work silent past its limit is a stall.
    fn check(&self) {
        let overdue = lock(&self.running).last().and_then(|r| {
            let silent = r.last_beat.elapsed();
            (silent > r.limit()).then(|| Stall { what: r.what.clone(), silent, limit: r.limit() })
        });
        let Some(stall) = overdue else { return };
        let mut current = lock(&self.stall);
        if current.as_ref().is_some_and(|s| s.what == stall.what) {
            return;
        }
        let recent: Vec<String> = lock(&self.recent).iter().cloned().collect();
        let nested: Vec<String> = lock(&self.running).iter().map(|r| r.what.clone()).collect();
        let queued = {
            let queues = lock(&self.queues);
            (queues.short.len(), queues.long.len())
        };
        tracing::error!(
            "{}: {}; running (outermost first): {:?}; queued: {} short, {} long; finished before it: {:?}",
            self.name,
            stall.describe(),
            nested,
            queued.0,
            queued.1,
            recent
        );
        *current = Some(stall);
    }
}

/// What a long work tells its caller while it runs; see [`DeviceOwner::run_reporting`].
pub struct Reporter<E> {
    send: mpsc::Sender<Message<E>>,
    /// The caller's answer to each event, so a cancel stops the work at this step, not the next.
    verdicts: mpsc::Receiver<bool>,
    cancelled: Arc<AtomicBool>,
}

impl<E> Reporter<E> {
    /// Hands `event` to the caller and waits for its answer; `false` once the caller asked the
    /// work to stop (or went away).
    pub fn report(&self, event: E) -> bool {
        self.send.send(Message::Event(event)).is_ok()
            && self.verdicts.recv().unwrap_or(false)
            && !self.cancelled.load(Ordering::Relaxed)
    }
}

enum Message<E> {
    Event(E),
    Done,
}

/// The thread that runs a device's burn work, and its watchdog.
pub struct DeviceOwner {
    shared: Arc<Shared>,
}

impl DeviceOwner {
    /// Starts an owner thread (and its watchdog) for `device`. Product code takes the
    /// process's owner of a target through [`owner_for`]; tests may start private ones.
    pub fn start(name: impl Into<String>, device: Device) -> Result<Self, ComputeError> {
        let name = name.into();
        let shared = Arc::new(Shared {
            name: name.clone(),
            device,
            queues: Mutex::default(),
            queued: Condvar::new(),
            running: Mutex::default(),
            stall: Mutex::default(),
            recent: Mutex::default(),
        });
        let owned = shared.clone();
        std::thread::Builder::new()
            .name(format!("kiln-device {name}"))
            .spawn(move || serve(owned))
            .map_err(|e| ComputeError::Failed(format!("cannot start the thread for {name}: {e}")))?;
        let watched = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name(format!("kiln-watchdog {name}"))
            .spawn(move || watch(watched))
            .map_err(|e| ComputeError::Failed(format!("cannot start the watchdog for {name}: {e}")))?;
        Ok(Self { shared })
    }

    /// The stall the watchdog saw and that has not ended yet.
    pub fn stall(&self) -> Option<Stall> {
        lock(&self.shared.stall).clone()
    }

    /// Whether this is the owner's own thread (work here runs in place).
    pub fn on_this_thread(&self) -> bool {
        this_owner().is_some_and(|o| Arc::ptr_eq(&o, &self.shared))
    }

    /// Runs `work` on the device's thread and waits for it. Work that is already on this
    /// device's thread (a job's upload of its model) runs at once, in place. A panic inside it
    /// becomes a typed error; a stall ends the wait with [`ComputeError::Stalled`].
    pub fn run<T: Send + 'static>(
        &self,
        what: impl Into<String>,
        priority: Priority,
        expected: Expected,
        work: impl FnOnce(&Device) -> T + Send + 'static,
    ) -> Result<T, ComputeError> {
        if self.on_this_thread() {
            return guarded(|| work(&self.shared.device));
        }
        self.submit(what.into(), priority, expected, move |device, _: &Reporter<()>| work(device), &mut |_| true)
    }

    /// Runs long `work` on the device's thread, handing each event it reports to `on_event` on
    /// this thread as it comes; `on_event` returning `false` makes the work's next
    /// [`Reporter::report`] return `false` (the work stops at its next step). Not for work
    /// already on this owner's thread.
    pub fn run_reporting<T: Send + 'static, E: Send + 'static>(
        &self,
        what: impl Into<String>,
        expected: Expected,
        work: impl FnOnce(&Device, &Reporter<E>) -> T + Send + 'static,
        on_event: &mut dyn FnMut(E) -> bool,
    ) -> Result<T, ComputeError> {
        assert!(!self.on_this_thread(), "long work with events cannot start on its own device's thread");
        self.submit(what.into(), Priority::Long, expected, work, on_event)
    }

    /// Drops `value` (tensors, a network's weights) on the device's thread, now if this is it,
    /// else as a short request nobody waits for; it goes even while the device is stalled.
    pub fn dispose<T: Send + 'static>(&self, value: T) {
        if self.on_this_thread() {
            drop(value);
            return;
        }
        let task = Task {
            what: "dropping released tensors".into(),
            expected: Expected::short(),
            abandoned: Arc::default(),
            work: Box::new(move |device| {
                drop(value);
                let _ = guarded(|| device.flush());
            }),
        };
        self.enqueue(task, Priority::Short);
    }

    /// Queues `work` and returns at once: for work whose answer the caller collects itself
    /// (a pool reading that the sampler waits for a bounded time). `false` when the device is
    /// stalled and the work was not queued.
    pub fn post(
        &self,
        what: impl Into<String>,
        priority: Priority,
        work: impl FnOnce(&Device) + Send + 'static,
    ) -> bool {
        if self.stall().is_some() {
            return false;
        }
        let task = Task {
            what: what.into(),
            expected: Expected::short(),
            abandoned: Arc::default(),
            work: Box::new(move |device| {
                let _ = guarded(|| work(device));
            }),
        };
        self.enqueue(task, priority);
        true
    }

    fn enqueue(&self, task: Task, priority: Priority) {
        let mut queues = lock(&self.shared.queues);
        match priority {
            Priority::Short => queues.short.push_back(task),
            Priority::Long => queues.long.push_back(task),
        }
        drop(queues);
        self.shared.queued.notify_one();
    }

    fn submit<T: Send + 'static, E: Send + 'static>(
        &self,
        what: String,
        priority: Priority,
        expected: Expected,
        work: impl FnOnce(&Device, &Reporter<E>) -> T + Send + 'static,
        on_event: &mut dyn FnMut(E) -> bool,
    ) -> Result<T, ComputeError> {
        if let Some(stall) = self.stall() {
            return Err(ComputeError::Stalled(stall.describe()));
        }
        let (send, receive) = mpsc::channel::<Message<E>>();
        let (verdict, verdicts) = mpsc::channel::<bool>();
        let cancelled = Arc::new(AtomicBool::new(false));
        let abandoned = Arc::new(AtomicBool::new(false));
        let answer: Arc<Mutex<Option<Result<T, ComputeError>>>> = Arc::default();
        let reporter = Reporter { send: send.clone(), verdicts, cancelled: cancelled.clone() };
        let slot = answer.clone();
        let task = Task {
            what,
            expected,
            abandoned: abandoned.clone(),
            work: Box::new(move |device| {
                let result = guarded(|| work(device, &reporter));
                *lock(&slot) = Some(result);
                let _ = send.send(Message::Done);
            }),
        };
        self.enqueue(task, priority);
        loop {
            match receive.recv_timeout(Duration::from_millis(250)) {
                Ok(Message::Event(event)) => {
                    let go_on = on_event(event);
                    if !go_on {
                        cancelled.store(true, Ordering::Relaxed);
                    }
                    let _ = verdict.send(go_on);
                }
                Ok(Message::Done) => {
                    return lock(&answer).take().unwrap_or_else(|| Err(ComputeError::Failed("no answer".into())));
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(stall) = self.stall() {
                        abandoned.store(true, Ordering::Relaxed);
                        cancelled.store(true, Ordering::Relaxed);
                        return Err(ComputeError::Stalled(stall.describe()));
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err(ComputeError::Failed(format!("{}'s thread ended", self.shared.name)));
                }
            }
        }
    }
}

impl Drop for DeviceOwner {
    fn drop(&mut self) {
        lock(&self.shared.queues).closed = true;
        self.shared.queued.notify_all();
    }
}

/// The owner thread: short requests first, then long work, one at a time.
fn serve(shared: Arc<Shared>) {
    THIS_OWNER.with(|o| *o.borrow_mut() = Some(shared.clone()));
    loop {
        let task = {
            let mut queues = lock(&shared.queues);
            loop {
                if let Some(task) = queues.short.pop_front().or_else(|| queues.long.pop_front()) {
                    break task;
                }
                if queues.closed {
                    return;
                }
                queues = shared.queued.wait(queues).unwrap_or_else(|e| e.into_inner());
            }
        };
        shared.run(task);
    }
}

/// How often the watchdog looks.
const WATCH_EVERY: Duration = Duration::from_millis(250);

fn watch(shared: Weak<Shared>) {
    loop {
        std::thread::sleep(WATCH_EVERY);
        let Some(shared) = shared.upgrade() else { return };
        if lock(&shared.queues).closed && lock(&shared.running).is_empty() {
            return;
        }
        shared.check();
    }
}

/// The process's owner of each compute target.
static OWNERS: OnceLock<Mutex<HashMap<ComputeTarget, Arc<DeviceOwner>>>> = OnceLock::new();

/// The owner of `target`'s burn device, started on first use. Every engine of the process
/// shares it: one burn device, one thread.
/// `name` names its threads and log lines (the first caller's name stays).
pub fn owner_for(target: ComputeTarget, name: &str) -> Result<Arc<DeviceOwner>, ComputeError> {
    let mut owners = lock(OWNERS.get_or_init(Mutex::default));
    if let Some(owner) = owners.get(&target) {
        return Ok(owner.clone());
    }
    let owner = Arc::new(DeviceOwner::start(name, burn_device(target))?);
    owners.insert(target, owner.clone());
    Ok(owner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> DeviceOwner {
        DeviceOwner::start("test CPU", Device::flex()).unwrap()
    }

    #[test]
    fn work_runs_on_one_thread_and_panics_become_errors() {
        let owner = owner();
        let here = std::thread::current().id();
        let (a, b) = (
            owner.run("a", Priority::Long, Expected::short(), |_| std::thread::current().id()).unwrap(),
            owner.run("b", Priority::Short, Expected::short(), |_| std::thread::current().id()).unwrap(),
        );
        assert_eq!(a, b);
        assert_ne!(a, here);
        let error = owner.run("boom", Priority::Long, Expected::short(), |_| -> () { panic!("device lost") });
        assert_eq!(error.unwrap_err(), ComputeError::Failed("device lost".into()));
        assert_eq!(owner.run("after", Priority::Long, Expected::short(), |_| 7).unwrap(), 7, "the owner survives");
    }

    /// A short request sent while a long work runs is served at the work's next step, not
    /// after the whole work.
    #[test]
    fn short_requests_go_between_a_long_works_steps() {
        let owner = Arc::new(owner());
        let (step_started, started) = mpsc::channel();
        let (go_on, proceed) = mpsc::channel::<()>();
        let order = Arc::new(Mutex::new(Vec::new()));
        let seen = order.clone();
        let long = {
            let owner = owner.clone();
            std::thread::spawn(move || {
                owner.run("long", Priority::Long, Expected::short(), move |_| {
                    for step in 0..3 {
                        step_started.send(step).unwrap();
                        proceed.recv_timeout(Duration::from_secs(30)).unwrap();
                        seen.lock().unwrap().push(format!("step {step}"));
                        between_steps();
                    }
                })
            })
        };
        assert_eq!(started.recv_timeout(Duration::from_secs(30)).unwrap(), 0);
        let short = {
            let (owner, seen) = (owner.clone(), order.clone());
            std::thread::spawn(move || {
                owner.run("reading", Priority::Short, Expected::short(), move |_| {
                    seen.lock().unwrap().push("short".into())
                })
            })
        };
        // The short request is queued behind step 0 only.
        std::thread::sleep(Duration::from_millis(200));
        for _ in 0..3 {
            go_on.send(()).unwrap();
        }
        short.join().unwrap().unwrap();
        long.join().unwrap().unwrap();
        assert_eq!(*order.lock().unwrap(), ["step 0", "short", "step 1", "step 2"]);
    }

    /// An owner told to sleep past its expected time plus grace: the caller gets a typed stall,
    /// the owner says so (what the device's health shows), new work is refused at once, another
    /// owner keeps working, and the stalled one serves again once the sleep ends.
    #[test]
    fn a_stalled_device_is_reported_and_other_devices_go_on() {
        let stuck = owner();
        let other = owner();
        let quick = Expected::new(Duration::from_millis(100)).with_grace(Duration::from_millis(400));
        let started = Instant::now();
        let error = stuck
            .run("job 1 upscale", Priority::Long, quick, |_| std::thread::sleep(Duration::from_secs(4)))
            .unwrap_err();
        assert!(matches!(&error, ComputeError::Stalled(m) if m.contains("job 1 upscale")), "{error:?}");
        assert!(started.elapsed() < Duration::from_secs(3), "the caller is told within the limit, not at the end");
        let stall = stuck.stall().expect("the stall is kept for the device's health");
        assert_eq!(stall.what, "job 1 upscale");
        assert!(matches!(
            stuck.run("reading", Priority::Short, Expected::short(), |_| ()),
            Err(ComputeError::Stalled(_))
        ));
        assert_eq!(other.run("elsewhere", Priority::Long, Expected::short(), |_| 1).unwrap(), 1);
        let deadline = Instant::now() + Duration::from_secs(30);
        while stuck.stall().is_some() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(stuck.stall(), None, "the stall ends when the stuck call returns");
        assert_eq!(stuck.run("again", Priority::Long, Expected::short(), |_| 2).unwrap(), 2);
    }

    /// Steps that keep beating are not a stall, however long the whole work takes; the limit
    /// follows the longest step seen.
    #[test]
    fn work_that_makes_progress_is_never_a_stall() {
        let owner = owner();
        let expected = Expected::new(Duration::from_millis(300)).with_grace(Duration::from_millis(300));
        owner
            .run("many steps", Priority::Long, expected, |_| {
                for _ in 0..12 {
                    std::thread::sleep(Duration::from_millis(150));
                    between_steps();
                }
            })
            .unwrap();
        assert_eq!(owner.stall(), None);
    }

    #[test]
    fn events_reach_the_caller_and_a_false_stops_the_work() {
        let owner = owner();
        let mut seen = Vec::new();
        let steps = owner
            .run_reporting(
                "reporting",
                Expected::short(),
                |_, reporter: &Reporter<u32>| {
                    let mut steps = 0;
                    for i in 0..100 {
                        steps += 1;
                        if !reporter.report(i) {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    steps
                },
                &mut |i| {
                    seen.push(i);
                    i < 3
                },
            )
            .unwrap();
        assert_eq!(steps, 4, "the work stops at the step the caller said no to");
        assert_eq!(&seen[..4], &[0, 1, 2, 3]);
    }
}
