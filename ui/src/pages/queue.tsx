// Queue: the workers and the queue's pause in the header; sessions; running jobs with step and
// tile progress, ETA and device; waiting jobs in run order (drag to reorder, move to front,
// pause, resume); finished jobs with state filters. Jobs of a batch are grouped under a
// collapsible header with the batch's progress. Every job opens a drawer with its log.

import type { JSX } from "preact";
import { useEffect, useState } from "preact/hooks";
import type { Batch, Job, JobState, Session } from "../generated/kiln";
import { call } from "../api/client";
import { markQueueSeen, reloadQueue, useJobProgress, useQueue } from "../api/queue";
import { useStore } from "../api/store";
import { ErrorNote } from "../components/common";
import { duration, when } from "../components/format";
import { JobDrawer } from "../components/job-drawer";
import { Thumb } from "../components/job-image";
import { isFinal, JobProgressBar, jobSeconds, ProgressBar, StateBadge, upscaleOutcome, useAction } from "../components/jobs";
import { SessionsPanel } from "./queue-sessions";

type Finished = "all" | "done" | "failed" | "cancelled";

/** The engine's run order: higher priority first, then queue position. */
function runOrder(a: Job, b: Job): number {
  return b.priority - a.priority || a.position - b.position || a.id - b.id;
}

/** Consecutive jobs of one batch, grouped; a job outside batches is a group of its own. */
function groups(jobs: Job[], batches: Map<number, Batch>): { batch?: Batch; jobs: Job[] }[] {
  const out: { batch?: Batch; jobs: Job[] }[] = [];
  for (const job of jobs) {
    const batch = job.batch_id != null ? batches.get(job.batch_id) : undefined;
    const last = out[out.length - 1];
    if (batch && last?.batch === batch) last.jobs.push(job);
    else out.push({ batch, jobs: [job] });
  }
  return out;
}

export function QueuePage() {
  const queue = useQueue();
  const store = useStore();
  const actions = useAction();
  const [open, setOpen] = useState<number | null>(null);
  const [filter, setFilter] = useState<Finished>("all");
  const [session, setSession] = useState<number | null>(null);
  const [collapsed, setCollapsed] = useState<Set<number>>(new Set());
  const [order, setOrder] = useState<number[] | null>(null);
  const list = queue.list;
  useEffect(() => markQueueSeen(), [list?.jobs]);

  const devices = new Map(store.devices.map((d) => [d.id, d.name]));
  const batches = new Map((list?.batches ?? []).map((b) => [b.id, b]));
  const inSession = (j: Job) => session == null || j.session_id === session;
  const jobs = (list?.jobs ?? []).filter(inSession);
  const running = jobs.filter((j) => j.state === "running").sort((a, b) => (a.started_ms ?? 0) - (b.started_ms ?? 0));
  let waiting = jobs.filter((j) => j.state === "queued" || j.state === "paused").sort(runOrder);
  // While a reorder is on its way, show the order asked for.
  if (order) waiting = [...waiting].sort((a, b) => order.indexOf(a.id) - order.indexOf(b.id));
  const finishedAll = jobs.filter((j) => isFinal(j.state)).sort((a, b) => (b.finished_ms ?? b.created_ms) - (a.finished_ms ?? a.created_ms));
  const finished = finishedAll.filter((j) => filter === "all" || j.state === filter);
  const count = (state: JobState) => jobs.filter((j) => j.state === state).length;

  const reorder = (ids: number[]) =>
    actions.run("reorder", async () => {
      setOrder(ids);
      try {
        await call("jobs.reorder", { ids });
        await reloadQueue();
      } finally {
        setOrder(null);
      }
    });
  const toggle = (batch: number) => {
    const next = new Set(collapsed);
    if (!next.delete(batch)) next.add(batch);
    setCollapsed(next);
  };
  const grouped = (shown: Job[], row: (job: Job) => JSX.Element) =>
    groups(shown, batches).map((g) =>
      g.batch && g.batch.jobs > 1 ? (
        <div class="batch-group" data-batch={g.batch.id}>
          <BatchHeader batch={g.batch} jobs={(list?.jobs ?? []).filter((j) => j.batch_id === g.batch!.id)} collapsed={collapsed.has(g.batch.id)} onToggle={() => toggle(g.batch!.id)} sessions={list?.sessions ?? []} />
          {!collapsed.has(g.batch.id) && g.jobs.map(row)}
        </div>
      ) : (
        g.jobs.map(row)
      ),
    );

  return (
    <section class="page">
      <header class="page-head row">
        <h1>Queue</h1>
        <span class="muted small queue-counts">
          {list ? `${count("running")} running · ${count("queued")} waiting · ${count("paused")} paused · ${count("done")} done · ${count("failed")} failed` : "Reading the queue…"}
        </span>
        <span class="spacer" />
        {list?.workers.map((w) => {
          const job = w.job_id != null ? list.jobs.find((j) => j.id === w.job_id) : undefined;
          const speeds = w.speeds.map((s) => `${s.model}: ${s.megapixels_per_second.toFixed(3)} MPx/s over ${s.jobs} job${s.jobs === 1 ? "" : "s"}`);
          const fastest = w.speeds.reduce<number | undefined>((best, s) => Math.max(best ?? 0, s.megapixels_per_second), undefined);
          const title = [w.takes_any ? "Takes jobs no one pinned to a device" : "Takes only jobs pinned to it", w.routing, ...(speeds.length ? speeds : ["no finished job measured here yet"])].filter(Boolean).join("\n");
          return (
            <span class={`worker${job ? " worker-busy" : ""}${w.takes_any ? " worker-unpinned" : ""}`} title={title} data-device={w.device_id} data-takes-any={String(w.takes_any)}>
              <span class={`dot ${job ? "dot-running" : "dot-idle"}`} />
              {w.device_name}: {job ? job.name : "idle"}
              <span class="muted small worker-route">
                {w.takes_any ? " · takes unpinned jobs" : " · pinned jobs only"}
                {fastest !== undefined && ` · up to ${fastest.toFixed(fastest < 1 ? 3 : 2)} MPx/s`}
              </span>
            </span>
          );
        })}
        {list && (
          <button class={`button${list.paused ? " button-primary" : ""}`} onClick={() => actions.run("queue", () => call(list.paused ? "queue.resume" : "queue.pause", {}).then(reloadQueue))}>
            {list.paused ? "Resume queue" : "Pause queue"}
          </button>
        )}
      </header>
      {list?.paused && <p class="queue-paused">The queue is paused: running jobs finish, no new one starts.</p>}
      {queue.error && <ErrorNote error={queue.error} />}
      {actions.error && <ErrorNote error={actions.error} />}

      <SessionsPanel sessions={list?.sessions ?? []} filter={session} onFilter={setSession} />

      <h3 class="section-gap">Running</h3>
      <div class="queue-list" role="group" aria-label="Running jobs">
        {running.map((job) => (
          <RunningJob job={job} device={job.device_id ? (devices.get(job.device_id) ?? job.device_id) : ""} onOpen={() => setOpen(job.id)} />
        ))}
        {list && running.length === 0 && <p class="muted small">Nothing running.{waiting.length && list.paused ? " Resume the queue to start." : ""}</p>}
      </div>

      <h3 class="section-gap">
        Waiting <span class="muted">{waiting.length || ""}</span>
      </h3>
      <WaitingList jobs={waiting} render={grouped} onOpen={setOpen} onReorder={reorder} />

      <div class="row section-gap">
        <h3 class="inline-heading">Finished</h3>
        <div class="row filters" role="group" aria-label="Filter finished jobs">
          {(["all", "done", "failed", "cancelled"] as Finished[]).map((f) => (
            <button class={`chip${filter === f ? " chip-on" : ""}`} aria-pressed={filter === f} onClick={() => setFilter(f)}>
              {f === "all" ? "All" : f[0].toUpperCase() + f.slice(1)}
              <span class="muted"> {f === "all" ? finishedAll.length : finishedAll.filter((j) => j.state === f).length}</span>
            </button>
          ))}
        </div>
        <span class="spacer" />
        {finished.length > 0 && (
          <button class="button button-quiet small" title="Delete these from the history; their files stay" onClick={() => actions.run("clear", () => call("jobs.remove", { ids: finished.map((j) => j.id) }))}>
            Clear {filter === "all" ? "finished" : filter}
          </button>
        )}
      </div>
      <div class="queue-list" role="group" aria-label="Finished jobs">
        {grouped(finished, (job) => <JobRow job={job} onOpen={() => setOpen(job.id)} />)}
        {list && finished.length === 0 && <p class="muted small">No finished jobs{filter === "all" ? "" : ` ${filter}`}. Drop images on the Upscale page to start.</p>}
      </div>
      {open != null && <JobDrawer key={open} id={open} onClose={() => setOpen(null)} />}
    </section>
  );
}

function BatchHeader({ batch, jobs, collapsed, onToggle, sessions }: { batch: Batch; jobs: Job[]; collapsed: boolean; onToggle: () => void; sessions: Session[] }) {
  const actions = useAction();
  const unfinished = jobs.filter((j) => !isFinal(j.state)).map((j) => j.id);
  const failed = jobs.filter((j) => j.state === "failed" || j.state === "cancelled").map((j) => j.id);
  const session = sessions.find((s) => s.id === batch.session_id);
  return (
    <div class="batch-head row">
      <button class="link" aria-expanded={!collapsed} onClick={onToggle}>
        {collapsed ? "▸" : "▾"} {batch.name}
      </button>
      <ProgressBar value={batch.progress} state="batch" label={`Progress of ${batch.name}`} />
      <span class="muted small figures-inline">
        {batch.done}/{batch.jobs} done{batch.failed ? ` · ${batch.failed} failed` : ""}
        {batch.cancelled ? ` · ${batch.cancelled} cancelled` : ""}
        {session ? ` · session ${session.name}` : ""}
      </span>
      <span class="spacer" />
      {failed.length > 0 && (
        <button class="button button-quiet small" onClick={() => actions.run("retry", () => call("jobs.retry", { ids: failed }))}>
          Retry {failed.length}
        </button>
      )}
      {unfinished.length > 0 && (
        <button class="button button-quiet small" onClick={() => actions.run("cancel", () => call("jobs.cancel", { ids: unfinished }))}>
          Cancel batch
        </button>
      )}
      {actions.error && <ErrorNote error={actions.error} />}
    </div>
  );
}

function RunningJob({ job, device, onOpen }: { job: Job; device: string; onOpen: () => void }) {
  const live = useJobProgress(job.id);
  const actions = useAction();
  return (
    <div class="queue-job running-job" data-job-id={job.id} data-state={job.state}>
      <Thumb id={job.id} which="input" side={128} box={64} alt="" />
      <div class="queue-job-main">
        <button class="link queue-job-name" onClick={onOpen}>
          {job.name}
        </button>
        <JobProgressBar job={job} />
      </div>
      <span class="muted small">{device}</span>
      <span class="num small">{duration(jobSeconds(job, live?.elapsed_s))}</span>
      <span class="row-actions">
        <button class="button small" onClick={() => actions.run("pause", () => call("jobs.pause", { ids: [job.id] }))}>
          Pause
        </button>
        <button class="button button-quiet small" onClick={() => actions.run("cancel", () => call("jobs.cancel", { ids: [job.id] }))}>
          Cancel
        </button>
      </span>
      {actions.error && <ErrorNote error={actions.error} />}
    </div>
  );
}

interface WaitingProps {
  jobs: Job[];
  render: (jobs: Job[], row: (job: Job) => JSX.Element) => (JSX.Element | JSX.Element[])[];
  onOpen: (id: number) => void;
  onReorder: (ids: number[]) => void;
}

/** Waiting jobs in run order; dragging a row onto another puts it before or after that one. */
function WaitingList({ jobs, render, onOpen, onReorder }: WaitingProps) {
  const [dragged, setDragged] = useState<number | null>(null);
  const [target, setTarget] = useState<{ id: number; after: boolean } | null>(null);
  const end = () => {
    setDragged(null);
    setTarget(null);
  };
  const drop = () => {
    if (dragged == null || !target || target.id === dragged) return end();
    const ids = jobs.map((j) => j.id).filter((id) => id !== dragged);
    ids.splice(ids.indexOf(target.id) + (target.after ? 1 : 0), 0, dragged);
    end();
    onReorder(ids);
  };
  const row = (job: Job) => (
    <JobRow
      job={job}
      onOpen={() => onOpen(job.id)}
      drag={{
        draggable: true,
        onDragStart: (e: DragEvent) => {
          e.dataTransfer?.setData("text/x-kiln-job", String(job.id));
          if (e.dataTransfer) e.dataTransfer.effectAllowed = "move";
          setDragged(job.id);
        },
        onDragOver: (e: DragEvent) => {
          if (dragged == null) return;
          e.preventDefault();
          const rect = (e.currentTarget as HTMLElement).getBoundingClientRect();
          setTarget({ id: job.id, after: e.clientY > rect.top + rect.height / 2 });
        },
        onDrop: (e: DragEvent) => {
          e.preventDefault();
          drop();
        },
        onDragEnd: end,
      }}
      dropMark={target?.id === job.id && dragged !== job.id ? (target.after ? "after" : "before") : undefined}
      first={jobs[0]?.id === job.id}
    />
  );
  return (
    <div class="queue-list" role="group" aria-label="Waiting jobs">
      {render(jobs, row)}
      {jobs.length === 0 && <p class="muted small">Nothing waiting.</p>}
    </div>
  );
}

interface RowProps {
  job: Job;
  onOpen: () => void;
  drag?: Record<string, unknown>;
  dropMark?: "before" | "after";
  first?: boolean;
}

function JobRow({ job, onOpen, drag, dropMark, first }: RowProps) {
  const actions = useAction();
  const outcome = upscaleOutcome(job);
  const ids = { ids: [job.id] };
  return (
    <div class={`queue-job${dropMark ? ` drop-${dropMark}` : ""}`} data-job-id={job.id} data-state={job.state} {...drag}>
      {drag ? (
        <span class="drag-handle" title="Drag to reorder" aria-hidden="true">
          ⋮⋮
        </span>
      ) : null}
      <Thumb id={job.id} which={job.state === "done" ? "output" : "input"} side={96} box={40} version={job.finished_ms} alt="" />
      <div class="queue-job-main">
        <button class="link queue-job-name" onClick={onOpen}>
          {job.name}
        </button>
        <span class="muted small">
          {outcome ? `${outcome.output_width} × ${outcome.output_height} · ${duration(outcome.seconds)} · ` : ""}
          {job.priority ? `priority ${job.priority} · ` : ""}
          {isFinal(job.state) ? when(job.finished_ms) : `queued ${when(job.created_ms)}`}
        </span>
        {job.state === "failed" && <span class="job-error small">{job.error?.message ?? "failed"}</span>}
      </div>
      <StateBadge state={job.state} />
      <span class="row-actions">
        {drag && !first && (
          <button class="button button-quiet small" title="Run it next" onClick={() => actions.run("front", () => call("jobs.move_to_front", { id: job.id }))}>
            Move to front
          </button>
        )}
        {job.state === "queued" && (
          <button class="button button-quiet small" onClick={() => actions.run("pause", () => call("jobs.pause", ids))}>
            Pause
          </button>
        )}
        {job.state === "paused" && (
          <button class="button small" onClick={() => actions.run("resume", () => call("jobs.resume", ids))}>
            Resume
          </button>
        )}
        {!isFinal(job.state) && (
          <button class="button button-quiet small" onClick={() => actions.run("cancel", () => call("jobs.cancel", ids))}>
            Cancel
          </button>
        )}
        {(job.state === "failed" || job.state === "cancelled") && (
          <button class="button small" onClick={() => actions.run("retry", () => call("jobs.retry", ids))}>
            Retry
          </button>
        )}
        <button class="button button-quiet small" onClick={onOpen} aria-label={`Details of ${job.name}`}>
          Log
        </button>
      </span>
      {actions.error && <ErrorNote error={actions.error} />}
    </div>
  );
}
