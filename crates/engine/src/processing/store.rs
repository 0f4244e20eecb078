//! The queue's SQLite store (`<data dir>/queue.db`, WAL, synchronous FULL): jobs, batches,
//! sessions, job logs and queue flags. Every change is one transaction, so a process killed at
//! any moment leaves either the old or the new state. Several Kiln processes (the app and a
//! `kiln upscale`) share one store: claims are `BEGIN IMMEDIATE` transactions, and a running
//! job names the process that holds it (`owner`) so another can take it back if that dies.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};

use super::{Batch, Job, JobSpec, JobState, LogLine, Session, SessionState, StepOutcome};
use crate::devices::DeviceId;
use crate::devices::sampler::unix_ms;
use crate::error::{ApiError, ErrorCode};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS batches (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    session_id INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
    created_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    position REAL NOT NULL,
    batch_id INTEGER REFERENCES batches(id) ON DELETE SET NULL,
    session_id INTEGER REFERENCES sessions(id) ON DELETE SET NULL,
    device_request TEXT,
    device_id TEXT,
    spec TEXT NOT NULL,
    step INTEGER NOT NULL DEFAULT 0,
    outcomes TEXT NOT NULL DEFAULT '[]',
    progress REAL NOT NULL DEFAULT 0,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    control TEXT,
    owner TEXT,
    heartbeat_ms INTEGER,
    created_ms INTEGER NOT NULL,
    started_ms INTEGER,
    finished_ms INTEGER
);
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, priority DESC, position);
CREATE INDEX IF NOT EXISTS jobs_by_batch ON jobs(batch_id);
-- A batch submitted again finds earlier jobs of the same work by their spec (resume_batch).
CREATE INDEX IF NOT EXISTS jobs_by_spec ON jobs(spec);
CREATE TABLE IF NOT EXISTS job_log (
    id INTEGER PRIMARY KEY,
    job_id INTEGER NOT NULL REFERENCES jobs(id) ON DELETE CASCADE,
    at_ms INTEGER NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS job_log_by_job ON job_log(job_id);
CREATE TABLE IF NOT EXISTS flags (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
";

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the job queue's database failed: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the job queue's record {0} does not parse: {1}")]
    Corrupt(i64, String),
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        ApiError::new(ErrorCode::Io, error.to_string())
    }
}

/// A stop asked of a running job, seen at its next tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Cancel,
}

/// A job to add.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub name: String,
    pub spec: JobSpec,
    pub priority: i32,
    pub device_request: Option<DeviceId>,
    pub session_id: Option<i64>,
}

/// What [`Store::resume_batch`] found of earlier runs of a batch's work.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Resumed {
    /// Results already on disk for inputs of the batch (their jobs were dropped).
    pub already_done: Vec<String>,
    /// Earlier unfinished jobs that joined the batch in place of its own.
    pub adopted: Vec<i64>,
}

/// Which jobs a worker may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Any job, while the queue is not paused.
    All,
    /// Only these batches' jobs, paused queue or not (a `kiln upscale` run).
    Batches(Vec<i64>),
}

/// Which jobs to list.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub states: Vec<JobState>,
    pub batch_id: Option<i64>,
    pub session_id: Option<i64>,
    pub limit: Option<u32>,
}

/// A running job back in the queue at the step it was on (its process ended or is ending),
/// or where a stop its owner never saw asked it to be.
const REQUEUE_RUNNING: &str =
    "UPDATE jobs SET state = CASE control WHEN 'cancel' THEN 'cancelled' WHEN 'pause' THEN 'paused' ELSE 'queued' END,
    owner = NULL, control = NULL WHERE id = ?1 AND state = 'running'";

pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

const JOB_COLUMNS: &str = "id, kind, name, state, priority, position, batch_id, session_id, device_request, device_id, spec, step, outcomes, progress, error, attempts, created_ms, started_ms, finished_ms";

fn job_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Job, StoreError>> {
    let id: i64 = row.get(0)?;
    let state: String = row.get(3)?;
    let spec: String = row.get(10)?;
    let outcomes: String = row.get(12)?;
    let error: Option<String> = row.get(14)?;
    let parse = || -> Result<Job, StoreError> {
        let corrupt = |what: &str, e: &dyn std::fmt::Display| StoreError::Corrupt(id, format!("{what}: {e}"));
        Ok(Job {
            id,
            kind: row.get(1)?,
            name: row.get(2)?,
            state: JobState::parse(&state).ok_or_else(|| corrupt("state", &state))?,
            priority: row.get(4)?,
            position: row.get(5)?,
            batch_id: row.get(6)?,
            session_id: row.get(7)?,
            device_request: row.get::<_, Option<String>>(8)?.map(DeviceId),
            device_id: row.get::<_, Option<String>>(9)?.map(DeviceId),
            spec: serde_json::from_str(&spec).map_err(|e| corrupt("spec", &e))?,
            step: row.get(11)?,
            outcomes: serde_json::from_str::<Vec<StepOutcome>>(&outcomes).map_err(|e| corrupt("outcomes", &e))?,
            progress: row.get(13)?,
            error: error.as_deref().map(serde_json::from_str).transpose().map_err(|e| corrupt("error", &e))?,
            attempts: row.get(15)?,
            created_ms: row.get::<_, i64>(16)? as u64,
            started_ms: row.get::<_, Option<i64>>(17)?.map(|v| v as u64),
            finished_ms: row.get::<_, Option<i64>>(18)?.map(|v| v as u64),
        })
    };
    Ok(parse())
}

impl Store {
    /// Opens (or creates) the store. A file that is not a healthy database is kept beside as
    /// `queue.db.damaged-<time>` and a new store starts, so Kiln always starts.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        match Self::open_checked(path) {
            Ok(store) => Ok(store),
            Err(error) if path.exists() => {
                let aside = path.with_extension(format!("db.damaged-{}", unix_ms()));
                tracing::warn!("the job queue {} is damaged ({error}); kept as {}", path.display(), aside.display());
                std::fs::rename(path, &aside)
                    .map_err(|e| StoreError::Sqlite(rusqlite::Error::InvalidPath(e.to_string().into())))?;
                for suffix in ["-wal", "-shm"] {
                    let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
                }
                Self::open_checked(path)
            }
            Err(error) => Err(error),
        }
    }

    fn open_checked(path: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let check: String = conn.query_row("PRAGMA quick_check", [], |r| r.get(0))?;
        if check != "ok" {
            return Err(StoreError::Corrupt(0, check));
        }
        conn.execute_batch(SCHEMA)?;
        conn.pragma_update(None, "user_version", SCHEMA_VERSION)?;
        Ok(Self { conn: Mutex::new(conn), path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn jobs_where(conn: &Connection, clause: &str, values: &[&dyn rusqlite::ToSql]) -> Result<Vec<Job>, StoreError> {
        let mut statement = conn.prepare_cached(&format!("SELECT {JOB_COLUMNS} FROM jobs {clause}"))?;
        let rows = statement.query_map(values, job_from_row)?;
        let mut jobs = Vec::new();
        for row in rows {
            jobs.push(row??);
        }
        Ok(jobs)
    }

    /// Adds jobs at the back of the queue, as one batch when `batch` names one.
    pub fn submit(
        &self,
        jobs: &[NewJob],
        batch: Option<(&str, Option<i64>)>,
    ) -> Result<(Option<i64>, Vec<Job>), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let now = unix_ms() as i64;
        let batch_id = match batch {
            Some((name, session)) => {
                tx.execute(
                    "INSERT INTO batches (name, session_id, created_ms) VALUES (?1, ?2, ?3)",
                    params![name, session, now],
                )?;
                Some(tx.last_insert_rowid())
            }
            None => None,
        };
        let mut position: f64 = tx.query_row("SELECT COALESCE(MAX(position), 0) FROM jobs", [], |r| r.get(0))?;
        let mut ids = Vec::new();
        for job in jobs {
            position += 1.0;
            let kind = if job.spec.steps.len() == 1 { job.spec.steps[0].kind() } else { "workflow" };
            let spec = serde_json::to_string(&job.spec).map_err(|e| StoreError::Corrupt(0, e.to_string()))?;
            tx.execute(
                "INSERT INTO jobs (kind, name, state, priority, position, batch_id, session_id, device_request, spec, created_ms)
                 VALUES (?1, ?2, 'queued', ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![kind, job.name, job.priority, position, batch_id, job.session_id, job.device_request.as_ref().map(|d| &d.0), spec, now],
            )?;
            let id = tx.last_insert_rowid();
            tx.execute(
                "INSERT INTO job_log (job_id, at_ms, level, message) VALUES (?1, ?2, 'info', ?3)",
                params![
                    id,
                    now,
                    format!(
                        "queued: {} ({} step{})",
                        job.name,
                        job.spec.steps.len(),
                        if job.spec.steps.len() == 1 { "" } else { "s" }
                    )
                ],
            )?;
            ids.push(id);
        }
        tx.commit()?;
        drop(conn);
        let jobs = ids.iter().filter_map(|id| self.get(*id).transpose()).collect::<Result<Vec<_>, _>>()?;
        Ok((batch_id, jobs))
    }

    pub fn get(&self, id: i64) -> Result<Option<Job>, StoreError> {
        Ok(Self::jobs_where(&self.conn(), "WHERE id = ?1", &[&id])?.pop())
    }

    /// Jobs in display order: running, then queued and paused in run order, then finished,
    /// newest first.
    pub fn list(&self, filter: &JobFilter) -> Result<Vec<Job>, StoreError> {
        let mut clauses = Vec::new();
        if !filter.states.is_empty() {
            let states: Vec<String> = filter.states.iter().map(|s| format!("'{}'", s.as_str())).collect();
            clauses.push(format!("state IN ({})", states.join(",")));
        }
        if let Some(batch) = filter.batch_id {
            clauses.push(format!("batch_id = {batch}"));
        }
        if let Some(session) = filter.session_id {
            clauses.push(format!("session_id = {session}"));
        }
        let clause = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
        let order = "ORDER BY CASE state WHEN 'running' THEN 0 WHEN 'queued' THEN 1 WHEN 'paused' THEN 1 ELSE 2 END,
            CASE WHEN state IN ('queued', 'paused') THEN -priority ELSE 0 END,
            CASE WHEN state IN ('queued', 'paused') THEN position ELSE -COALESCE(finished_ms, created_ms) END, id";
        let limit = filter.limit.map(|l| format!("LIMIT {l}")).unwrap_or_default();
        Self::jobs_where(&self.conn(), &format!("{clause} {order} {limit}"), &[])
    }

    /// The finished jobs with results, newest first (the gallery).
    pub fn results(&self, limit: u32) -> Result<Vec<Job>, StoreError> {
        Self::jobs_where(&self.conn(), "WHERE state = 'done' ORDER BY finished_ms DESC, id DESC LIMIT ?1", &[&limit])
    }

    pub fn batches(&self) -> Result<Vec<Batch>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT b.id, b.name, b.session_id, b.created_ms, COUNT(j.id),
                SUM(j.state = 'done'), SUM(j.state = 'failed'), SUM(j.state = 'cancelled'),
                COALESCE(AVG(CASE WHEN j.state IN ('done', 'failed', 'cancelled') THEN 1.0 ELSE j.progress END), 0)
             FROM batches b LEFT JOIN jobs j ON j.batch_id = b.id GROUP BY b.id ORDER BY b.id DESC LIMIT 200",
        )?;
        let rows = statement.query_map([], |r| {
            Ok(Batch {
                id: r.get(0)?,
                name: r.get(1)?,
                session_id: r.get(2)?,
                created_ms: r.get::<_, i64>(3)? as u64,
                jobs: r.get(4)?,
                done: r.get::<_, Option<u32>>(5)?.unwrap_or(0),
                failed: r.get::<_, Option<u32>>(6)?.unwrap_or(0),
                cancelled: r.get::<_, Option<u32>>(7)?.unwrap_or(0),
                progress: r.get(8)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn sessions(&self) -> Result<Vec<Session>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(
            "SELECT s.id, s.name, s.state, s.created_ms, COUNT(j.id), SUM(j.state = 'done'),
                COALESCE(AVG(CASE WHEN j.state IN ('done', 'failed', 'cancelled') THEN 1.0 ELSE j.progress END), 0)
             FROM sessions s LEFT JOIN jobs j ON j.session_id = s.id GROUP BY s.id ORDER BY s.id DESC",
        )?;
        let rows = statement.query_map([], |r| {
            let state: String = r.get(2)?;
            Ok(Session {
                id: r.get(0)?,
                name: r.get(1)?,
                state: SessionState::parse(&state).unwrap_or(SessionState::Paused),
                created_ms: r.get::<_, i64>(3)? as u64,
                jobs: r.get(4)?,
                done: r.get::<_, Option<u32>>(5)?.unwrap_or(0),
                progress: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn create_session(&self, name: &str, start: bool) -> Result<i64, StoreError> {
        let state = if start { SessionState::Active } else { SessionState::Idle };
        let conn = self.conn();
        conn.execute(
            "INSERT INTO sessions (name, state, created_ms) VALUES (?1, ?2, ?3)",
            params![name, state.as_str(), unix_ms() as i64],
        )?;
        Ok(conn.last_insert_rowid())
    }

    /// Sets a session's state; cancelling it cancels its unfinished jobs (running ones at their
    /// next tile). Returns whether the session exists.
    pub fn set_session_state(&self, id: i64, state: SessionState) -> Result<bool, StoreError> {
        let changed =
            self.conn().execute("UPDATE sessions SET state = ?2 WHERE id = ?1", params![id, state.as_str()])?;
        if changed > 0 && state == SessionState::Cancelled {
            let ids: Vec<i64> = self
                .list(&JobFilter { session_id: Some(id), ..Default::default() })?
                .into_iter()
                .map(|j| j.id)
                .collect();
            self.cancel(&ids)?;
        }
        Ok(changed > 0)
    }

    /// Takes the next job this device may run: highest priority, then queue order; jobs of
    /// sessions that are not active wait.
    pub fn claim(
        &self,
        device: &DeviceId,
        takes_any: bool,
        scope: &Scope,
        owner: &str,
    ) -> Result<Option<Job>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let paused: bool = tx
            .query_row("SELECT value = '1' FROM flags WHERE key = 'paused'", [], |r| r.get(0))
            .optional()?
            .unwrap_or(false);
        let scope_clause = match scope {
            Scope::All if paused => return Ok(None),
            Scope::All => String::new(),
            Scope::Batches(ids) => {
                format!("AND j.batch_id IN ({})", ids.iter().map(i64::to_string).collect::<Vec<_>>().join(","))
            }
        };
        let id: Option<i64> = tx
            .query_row(
                &format!(
                    "SELECT j.id FROM jobs j LEFT JOIN sessions s ON s.id = j.session_id
                     WHERE j.state = 'queued' AND (j.session_id IS NULL OR s.state = 'active')
                       AND (j.device_request = ?1 OR (j.device_request IS NULL AND ?2)) {scope_clause}
                     ORDER BY j.priority DESC, j.position ASC LIMIT 1"
                ),
                params![device.0, takes_any],
                |r| r.get(0),
            )
            .optional()?;
        let Some(id) = id else { return Ok(None) };
        let now = unix_ms() as i64;
        tx.execute(
            "UPDATE jobs SET state = 'running', device_id = ?2, owner = ?3, heartbeat_ms = ?4, control = NULL,
                started_ms = COALESCE(started_ms, ?4), attempts = attempts + 1, error = NULL WHERE id = ?1",
            params![id, device.0, owner, now],
        )?;
        tx.execute(
            "INSERT INTO job_log (job_id, at_ms, level, message) VALUES (?1, ?2, 'info', ?3)",
            params![id, now, format!("started on {device}")],
        )?;
        tx.commit()?;
        drop(conn);
        self.get(id)
    }

    /// Records progress and proves the owner is alive; returns a stop asked of the job.
    pub fn heartbeat(&self, id: i64, progress: f64) -> Result<Option<Control>, StoreError> {
        let conn = self.conn();
        conn.execute(
            "UPDATE jobs SET progress = ?2, heartbeat_ms = ?3 WHERE id = ?1 AND state = 'running'",
            params![id, progress, unix_ms() as i64],
        )?;
        let control: Option<String> =
            conn.query_row("SELECT control FROM jobs WHERE id = ?1", [id], |r| r.get(0)).optional()?.flatten();
        Ok(match control.as_deref() {
            Some("pause") => Some(Control::Pause),
            Some("cancel") => Some(Control::Cancel),
            _ => None,
        })
    }

    /// Proves `owner` alive while it runs job `id`, between the heartbeats its tiles give: a
    /// tile may take minutes (a large tile on a slow GPU, a first launch compiling kernels).
    pub fn beat(&self, id: i64, owner: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "UPDATE jobs SET heartbeat_ms = ?3 WHERE id = ?1 AND owner = ?2 AND state = 'running'",
            params![id, owner, unix_ms() as i64],
        )?;
        Ok(())
    }

    /// A step finished: its outcome is kept and the job moves to the next step.
    pub fn step_done(&self, id: i64, step: u32, outcome: &StepOutcome, progress: f64) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let outcomes: String = tx.query_row("SELECT outcomes FROM jobs WHERE id = ?1", [id], |r| r.get(0))?;
        let mut outcomes: Vec<StepOutcome> =
            serde_json::from_str(&outcomes).map_err(|e| StoreError::Corrupt(id, e.to_string()))?;
        outcomes.truncate(step as usize);
        outcomes.push(outcome.clone());
        let text = serde_json::to_string(&outcomes).map_err(|e| StoreError::Corrupt(id, e.to_string()))?;
        tx.execute(
            "UPDATE jobs SET outcomes = ?2, step = ?3, progress = ?4 WHERE id = ?1",
            params![id, text, step + 1, progress],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Ends a running job: done, failed (with the error), cancelled, or back to paused.
    pub fn finish(&self, id: i64, state: JobState, error: Option<&ApiError>) -> Result<(), StoreError> {
        let error = error.map(|e| serde_json::to_string(e).unwrap_or_default());
        let finished = state.is_final().then(|| unix_ms() as i64);
        self.conn().execute(
            "UPDATE jobs SET state = ?2, error = ?3, finished_ms = ?4, control = NULL, owner = NULL,
                progress = CASE WHEN ?2 = 'done' THEN 1.0 ELSE progress END WHERE id = ?1",
            params![id, state.as_str(), error, finished],
        )?;
        Ok(())
    }

    pub fn log(&self, id: i64, level: &str, message: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO job_log (job_id, at_ms, level, message) VALUES (?1, ?2, ?3, ?4)",
            params![id, unix_ms() as i64, level, message],
        )?;
        Ok(())
    }

    pub fn log_of(&self, id: i64) -> Result<Vec<LogLine>, StoreError> {
        let conn = self.conn();
        let mut statement =
            conn.prepare_cached("SELECT at_ms, level, message FROM job_log WHERE job_id = ?1 ORDER BY id")?;
        let rows = statement.query_map([id], |r| {
            Ok(LogLine { at_ms: r.get::<_, i64>(0)? as u64, level: r.get(1)?, message: r.get(2)? })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Runs `sql` on each of `ids` that matches, logging `message`; returns those changed.
    fn change(&self, ids: &[i64], sql: &str, message: &str) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut changed = Vec::new();
        for id in ids {
            if tx.execute(sql, [id])? > 0 {
                tx.execute(
                    "INSERT INTO job_log (job_id, at_ms, level, message) VALUES (?1, ?2, 'info', ?3)",
                    params![id, unix_ms() as i64, message],
                )?;
                changed.push(*id);
            }
        }
        tx.commit()?;
        Ok(changed)
    }

    /// Cancels waiting jobs now and asks running ones to stop at their next tile.
    pub fn cancel(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        let now = unix_ms();
        let mut changed = self.change(
            ids,
            &format!("UPDATE jobs SET state = 'cancelled', finished_ms = {now} WHERE id = ?1 AND state IN ('queued', 'paused')"),
            "cancelled",
        )?;
        changed.extend(self.change(
            ids,
            "UPDATE jobs SET control = 'cancel' WHERE id = ?1 AND state = 'running'",
            "cancel asked: stopping at the next tile",
        )?);
        Ok(changed)
    }

    /// Holds waiting jobs, and asks running ones to stop at their next tile and wait.
    pub fn pause(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        let mut changed =
            self.change(ids, "UPDATE jobs SET state = 'paused' WHERE id = ?1 AND state = 'queued'", "paused")?;
        changed.extend(self.change(
            ids,
            "UPDATE jobs SET control = 'pause' WHERE id = ?1 AND state = 'running'",
            "pause asked: stopping at the next tile",
        )?);
        Ok(changed)
    }

    pub fn resume(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        self.change(ids, "UPDATE jobs SET state = 'queued' WHERE id = ?1 AND state = 'paused'", "resumed")
    }

    /// Queues failed or cancelled jobs again, at the step they stopped on.
    pub fn retry(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        self.change(
            ids,
            "UPDATE jobs SET state = 'queued', error = NULL, finished_ms = NULL, control = NULL WHERE id = ?1 AND state IN ('failed', 'cancelled')",
            "queued again (retry)",
        )
    }

    /// Deletes finished jobs from the history (their files stay).
    pub fn remove(&self, ids: &[i64]) -> Result<Vec<i64>, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut removed = Vec::new();
        for id in ids {
            if tx.execute("DELETE FROM jobs WHERE id = ?1 AND state IN ('done', 'failed', 'cancelled')", [id])? > 0 {
                removed.push(*id);
            }
        }
        tx.commit()?;
        Ok(removed)
    }

    /// Puts a waiting job first: the highest waiting priority, ahead of every waiting job.
    pub fn move_to_front(&self, id: i64) -> Result<bool, StoreError> {
        let changed = self.conn().execute(
            "UPDATE jobs SET
                priority = (SELECT COALESCE(MAX(priority), 0) FROM jobs WHERE state IN ('queued', 'paused')),
                position = (SELECT COALESCE(MIN(position), 0) - 1 FROM jobs WHERE state IN ('queued', 'paused'))
             WHERE id = ?1 AND state IN ('queued', 'paused')",
            [id],
        )?;
        Ok(changed > 0)
    }

    /// Puts waiting jobs in the given order, in the places they held between them.
    pub fn reorder(&self, ids: &[i64]) -> Result<(), StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut places = Vec::new();
        let mut priority = i32::MIN;
        for id in ids {
            let row: Option<(f64, i32)> = tx
                .query_row(
                    "SELECT position, priority FROM jobs WHERE id = ?1 AND state IN ('queued', 'paused')",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((position, p)) = row {
                places.push(position);
                priority = priority.max(p);
            }
        }
        places.sort_by(f64::total_cmp);
        let mut places = places.into_iter();
        for id in ids {
            let exists: bool = tx.query_row(
                "SELECT COUNT(*) > 0 FROM jobs WHERE id = ?1 AND state IN ('queued', 'paused')",
                [id],
                |r| r.get(0),
            )?;
            if exists && let Some(place) = places.next() {
                tx.execute("UPDATE jobs SET position = ?2, priority = ?3 WHERE id = ?1", params![id, place, priority])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    pub fn set_priority(&self, id: i64, priority: i32) -> Result<bool, StoreError> {
        Ok(self.conn().execute("UPDATE jobs SET priority = ?2 WHERE id = ?1", params![id, priority])? > 0)
    }

    pub fn paused(&self) -> Result<bool, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT value = '1' FROM flags WHERE key = 'paused'", [], |r| r.get(0))
            .optional()?
            .unwrap_or(false))
    }

    pub fn set_paused(&self, paused: bool) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO flags (key, value) VALUES ('paused', ?1) ON CONFLICT(key) DO UPDATE SET value = ?1",
            [if paused { "1" } else { "0" }],
        )?;
        Ok(())
    }

    /// Queues again every running job whose owner is gone (per `alive`) or silent for longer
    /// than `stale_ms`; returns their ids.
    pub fn reclaim(&self, alive: &dyn Fn(&str) -> bool, stale_ms: u64) -> Result<Vec<i64>, StoreError> {
        let now = unix_ms();
        let running: Vec<(i64, Option<String>, Option<i64>)> = {
            let conn = self.conn();
            let mut statement =
                conn.prepare_cached("SELECT id, owner, heartbeat_ms FROM jobs WHERE state = 'running'")?;
            let rows = statement.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let lost: Vec<i64> = running
            .into_iter()
            .filter(|(_, owner, beat)| {
                let silent = beat.is_none_or(|b| now.saturating_sub(b as u64) > stale_ms);
                owner.as_deref().is_none_or(|o| !alive(o)) || silent
            })
            .map(|(id, _, _)| id)
            .collect();
        let back = self.change(
            &lost,
            REQUEUE_RUNNING,
            "interrupted: the process running it ended; queued again at the step it was on",
        )?;
        Ok(back)
    }

    /// Makes a batch just submitted resume earlier runs of the same work (`kiln upscale` run
    /// again after it was killed): each of its jobs whose input, steps, output folder and device
    /// an earlier job shares is dropped in favour of that job. An earlier job that finished, and
    /// whose result is still on disk, means the input is done; one still waiting, paused or
    /// running (a killed run's, or another process's) joins this batch and runs once; copies of
    /// it from other killed runs are dropped. Earlier failed and cancelled jobs stay as history.
    pub fn resume_batch(&self, batch: i64) -> Result<Resumed, StoreError> {
        let mut conn = self.conn();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let fresh: Vec<(i64, String, Option<String>)> = {
            let mut statement =
                tx.prepare("SELECT id, spec, device_request FROM jobs WHERE batch_id = ?1 ORDER BY id")?;
            let rows = statement.query_map([batch], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
            rows.collect::<Result<_, _>>()?
        };
        let mut resumed = Resumed::default();
        for (id, spec, device) in fresh {
            let earlier: Vec<(i64, String, String)> = {
                let mut statement = tx.prepare_cached(
                    "SELECT id, state, outcomes FROM jobs
                     WHERE spec = ?1 AND device_request IS ?2 AND id != ?3 AND (batch_id IS NULL OR batch_id != ?4)
                       AND state IN ('done', 'queued', 'paused', 'running')
                     ORDER BY id",
                )?;
                let rows =
                    statement.query_map(params![spec, device, id, batch], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
                rows.collect::<Result<_, _>>()?
            };
            let done = earlier.iter().find_map(|(_, state, outcomes)| {
                let outcomes: Vec<StepOutcome> = serde_json::from_str(outcomes).ok()?;
                let output = outcomes.last()?.output().to_owned();
                (state == "done" && Path::new(&output).exists()).then_some(output)
            });
            let waiting: Vec<i64> =
                earlier.iter().filter(|(_, state, _)| state != "done").map(|(id, _, _)| *id).collect();
            let kept = match (&done, waiting.first()) {
                (Some(output), _) => {
                    resumed.already_done.push(output.clone());
                    None
                }
                (None, Some(&first)) => Some(first),
                (None, None) => continue,
            };
            // The fresh job goes; so do waiting copies but the one kept (all of them when the
            // input is done).
            tx.execute("DELETE FROM jobs WHERE id = ?1", [id])?;
            for other in waiting.iter().filter(|w| Some(**w) != kept) {
                tx.execute("DELETE FROM jobs WHERE id = ?1 AND state != 'running'", [other])?;
            }
            if let Some(kept) = kept {
                tx.execute(
                    "UPDATE jobs SET batch_id = ?2, state = CASE state WHEN 'paused' THEN 'queued' ELSE state END WHERE id = ?1",
                    params![kept, batch],
                )?;
                tx.execute(
                    "INSERT INTO job_log (job_id, at_ms, level, message) VALUES (?1, ?2, 'info', ?3)",
                    params![
                        kept,
                        unix_ms() as i64,
                        format!("resumed by batch {batch}: the same work was submitted again")
                    ],
                )?;
                resumed.adopted.push(kept);
            }
        }
        tx.commit()?;
        Ok(resumed)
    }

    /// Puts `owner`'s running jobs back in the queue at the step each was on, as that process
    /// stops, and keeps the connection: no write lands after this while the guard lives (the
    /// process ends holding it).
    pub fn stop_owner(&self, owner: &str) -> Result<(Vec<i64>, std::sync::MutexGuard<'_, Connection>), StoreError> {
        let running: Vec<i64> = {
            let conn = self.conn();
            let mut statement = conn.prepare_cached("SELECT id FROM jobs WHERE state = 'running' AND owner = ?1")?;
            let rows = statement.query_map([owner], |r| r.get(0))?;
            rows.collect::<Result<_, _>>()?
        };
        let back =
            self.change(&running, REQUEUE_RUNNING, "interrupted: Kiln stopped; queued again at the step it was on")?;
        Ok((back, self.conn()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::processing::Step;

    fn job(name: &str, priority: i32) -> NewJob {
        NewJob {
            name: name.into(),
            spec: JobSpec {
                input: format!("/in/{name}"),
                steps: vec![Step::Upscale(Default::default())],
                output_dir: "/out".into(),
            },
            priority,
            device_request: None,
            session_id: None,
        }
    }

    fn open() -> (kiln_testdir::TempDir, Store) {
        let dir = kiln_testdir::TempDir::new();
        let store = Store::open(&dir.path().join("queue.db")).unwrap();
        (dir, store)
    }

    fn gpu() -> DeviceId {
        DeviceId("gpu".into())
    }

    fn next(store: &Store) -> Option<String> {
        store.claim(&gpu(), true, &Scope::All, "me").unwrap().map(|j| j.name)
    }

    /// `kiln upscale` run three times over the same inputs, killed twice: the finished input is
    /// not redone, the killed runs' unfinished jobs run once in the last batch (not once per
    /// run), and their other copies are gone.
    #[test]
    fn a_batch_submitted_again_resumes_the_earlier_runs_work() {
        let (dir, store) = open();
        let inputs = [job("a.png", 0), job("b.png", 0), job("c.png", 0)];
        let (first, jobs) = store.submit(&inputs, Some(("run 1", None))).unwrap();
        assert_eq!(store.resume_batch(first.unwrap()).unwrap(), Resumed::default());
        // Run 1 finished a.png (its result on disk) and was killed while b.png ran.
        let output = dir.path().join("a_x4.png");
        std::fs::write(&output, b"png").unwrap();
        let outcome = StepOutcome::Upscale(crate::postprocessing::upscale::UpscaleOutcome {
            output: output.display().to_string(),
            input_width: 1,
            input_height: 1,
            output_width: 4,
            output_height: 4,
            model: "m".into(),
            model_autov2: None,
            device_id: gpu(),
            precision: crate::nets::Precision::F32,
            tile: 32,
            tta: false,
            seconds: 1.0,
        });
        assert_eq!(next(&store).as_deref(), Some("a.png"));
        store.step_done(jobs[0].id, 0, &outcome, 1.0).unwrap();
        store.finish(jobs[0].id, JobState::Done, None).unwrap();
        assert_eq!(next(&store).as_deref(), Some("b.png"));
        // Run 2, killed before anything ran; run 3 goes on.
        let (second, _) = store.submit(&inputs, Some(("run 2", None))).unwrap();
        let resumed = store.resume_batch(second.unwrap()).unwrap();
        assert_eq!(resumed.already_done, vec![output.display().to_string()]);
        assert_eq!(resumed.adopted, vec![jobs[1].id, jobs[2].id]);
        let (third, _) = store.submit(&inputs, Some(("run 3", None))).unwrap();
        let third = third.unwrap();
        let resumed = store.resume_batch(third).unwrap();
        assert_eq!(resumed.adopted, vec![jobs[1].id, jobs[2].id], "the same jobs, not copies");
        let batch: Vec<i64> = store
            .list(&JobFilter { batch_id: Some(third), ..Default::default() })
            .unwrap()
            .iter()
            .map(|j| j.id)
            .collect();
        assert_eq!(batch.len(), 2);
        let all = store.list(&JobFilter::default()).unwrap();
        assert_eq!(all.len(), 3, "one job an input: {all:?}");
        // Without its result on disk, a finished input runs again.
        std::fs::remove_file(&output).unwrap();
        let (fourth, _) = store.submit(&inputs[..1], Some(("run 4", None))).unwrap();
        assert_eq!(store.resume_batch(fourth.unwrap()).unwrap(), Resumed::default());
    }

    #[test]
    fn priority_then_order_then_front_and_reorder() {
        let (_dir, store) = open();
        let (_, jobs) = store.submit(&[job("a", 0), job("b", 0), job("c", 5), job("d", 0)], None).unwrap();
        let ids: Vec<i64> = jobs.iter().map(|j| j.id).collect();
        assert!(store.move_to_front(ids[3]).unwrap());
        // d now has c's priority and the first place; c's priority is equal, so d runs first.
        assert_eq!(next(&store).as_deref(), Some("d"));
        assert_eq!(next(&store).as_deref(), Some("c"));
        store.reorder(&[ids[1], ids[0]]).unwrap();
        assert_eq!(next(&store).as_deref(), Some("b"));
        assert_eq!(next(&store).as_deref(), Some("a"));
        assert_eq!(next(&store), None);
    }

    #[test]
    fn pause_resume_cancel_retry() {
        let (_dir, store) = open();
        let (_, jobs) = store.submit(&[job("a", 0), job("b", 0)], Some(("drop", None))).unwrap();
        let (a, b) = (jobs[0].id, jobs[1].id);
        store.set_paused(true).unwrap();
        assert_eq!(next(&store), None, "a paused queue starts nothing");
        // ...except for a run scoped to its own batch (kiln upscale).
        let batch = jobs[0].batch_id.unwrap();
        let scoped = store.claim(&gpu(), true, &Scope::Batches(vec![batch]), "cli").unwrap().unwrap();
        assert_eq!(scoped.id, a);
        store.set_paused(false).unwrap();
        assert_eq!(store.pause(&[b]).unwrap(), vec![b]);
        assert_eq!(next(&store), None, "a paused job waits");
        store.resume(&[b]).unwrap();
        // A running job is asked to stop; it sees the request at its next heartbeat.
        store.cancel(&[a]).unwrap();
        assert_eq!(store.heartbeat(a, 0.5).unwrap(), Some(Control::Cancel));
        store.finish(a, JobState::Cancelled, None).unwrap();
        assert_eq!(store.retry(&[a]).unwrap(), vec![a]);
        assert_eq!(store.get(a).unwrap().unwrap().state, JobState::Queued);
        let log = store.log_of(a).unwrap();
        assert!(log.iter().any(|l| l.message.contains("retry")), "{log:?}");
        let batches = store.batches().unwrap();
        assert_eq!((batches[0].name.as_str(), batches[0].jobs), ("drop", 2));
    }

    #[test]
    fn sessions_hold_their_jobs_until_started() {
        let (_dir, store) = open();
        let session = store.create_session("evening", false).unwrap();
        let (_, jobs) =
            store.submit(&[NewJob { session_id: Some(session), ..job("s", 9) }, job("free", 0)], None).unwrap();
        assert_eq!(next(&store).as_deref(), Some("free"));
        assert_eq!(next(&store), None);
        store.set_session_state(session, SessionState::Active).unwrap();
        assert_eq!(next(&store).as_deref(), Some("s"));
        store.set_session_state(session, SessionState::Cancelled).unwrap();
        assert_eq!(store.heartbeat(jobs[0].id, 0.1).unwrap(), Some(Control::Cancel));
        assert_eq!(store.sessions().unwrap()[0].state, SessionState::Cancelled);
    }

    #[test]
    fn device_requests_and_workflow_steps() {
        let (_dir, store) = open();
        let pinned = NewJob { device_request: Some(DeviceId("cpu".into())), ..job("pinned", 9) };
        store.submit(&[pinned, job("any", 0)], None).unwrap();
        assert_eq!(next(&store).as_deref(), Some("any"), "the GPU worker leaves the CPU's job");
        let cpu = store.claim(&DeviceId("cpu".into()), false, &Scope::All, "me").unwrap().unwrap();
        assert_eq!(cpu.name, "pinned");
        let outcome = StepOutcome::Upscale(crate::postprocessing::upscale::UpscaleOutcome {
            output: "/w/1.png".into(),
            input_width: 1,
            input_height: 1,
            output_width: 4,
            output_height: 4,
            model: "m".into(),
            model_autov2: None,
            device_id: DeviceId("cpu".into()),
            precision: crate::nets::Precision::F32,
            tile: 32,
            tta: false,
            seconds: 0.1,
        });
        store.step_done(cpu.id, 0, &outcome, 0.5).unwrap();
        let after = store.get(cpu.id).unwrap().unwrap();
        assert_eq!((after.step, after.outcomes.len()), (1, 1));
    }

    #[test]
    fn jobs_of_dead_processes_go_back_to_the_queue() {
        let (dir, store) = open();
        let (_, jobs) = store.submit(&[job("a", 0), job("b", 0)], None).unwrap();
        store.claim(&gpu(), true, &Scope::All, "dead:1").unwrap();
        store.claim(&gpu(), true, &Scope::All, "alive:1").unwrap();
        drop(store);
        let store = Store::open(&dir.path().join("queue.db")).unwrap();
        let back = store.reclaim(&|owner| owner == "alive:1", 60_000).unwrap();
        assert_eq!(back, vec![jobs[0].id]);
        assert_eq!(store.get(jobs[0].id).unwrap().unwrap().state, JobState::Queued);
        assert_eq!(store.get(jobs[1].id).unwrap().unwrap().state, JobState::Running);
        // A silent owner counts as gone too.
        assert_eq!(store.reclaim(&|_| true, 0).unwrap(), vec![jobs[1].id]);
    }

    #[test]
    fn a_damaged_file_is_kept_aside_and_a_new_store_starts() {
        let dir = kiln_testdir::TempDir::new();
        let path = dir.path().join("queue.db");
        std::fs::write(&path, vec![0x42; 8192]).unwrap();
        let store = Store::open(&path).unwrap();
        assert!(store.list(&JobFilter::default()).unwrap().is_empty());
        let aside = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("queue.db.damaged-"));
        assert!(aside);
    }
}
