// A job's drawer on the Queue page: its state and progress, error, input and result with
// thumbnails, what each step was asked and produced, its log, and the actions that fit its
// state (retry, cancel, pause, resume, move to front, priority, remove, open file or folder).

import { useCallback, useEffect, useState } from "preact/hooks";
import type { Job, JobDetails, StepOutcome } from "../generated/kiln";
import { call, KilnError } from "../api/client";
import { jobById } from "../api/queue";
import { useEvents, useStore } from "../api/store";
import { ErrorNote } from "./common";
import { duration, fileName, pixels, when } from "./format";
import { Thumb } from "./job-image";
import { isFinal, JobProgressBar, modelName, StateBadge, stepSummary, useAction } from "./jobs";

function OutcomeFacts({ outcome, devices }: { outcome: StepOutcome; devices: Map<string, string> }) {
  return (
    <dl class="kv">
      <dt>Result</dt>
      <dd class="mono">{outcome.output}</dd>
      <dt>Size</dt>
      <dd>
        {pixels(outcome.input_width, outcome.input_height)} → {pixels(outcome.output_width, outcome.output_height)}
      </dd>
      <dt>Model</dt>
      <dd>
        {modelName(outcome.model)} {outcome.model_autov2 && <span class="mono muted">{outcome.model_autov2}</span>}
      </dd>
      <dt>Ran on</dt>
      <dd>
        {devices.get(outcome.device_id) ?? outcome.device_id} · {outcome.precision} · tile {outcome.tile}
        {outcome.tta ? " · TTA" : ""}
      </dd>
      <dt>Took</dt>
      <dd>{duration(outcome.seconds)}</dd>
    </dl>
  );
}

export function JobDrawer({ id, onClose }: { id: number; onClose: () => void }) {
  const store = useStore();
  const [details, setDetails] = useState<JobDetails | null>(null);
  const [loadError, setLoadError] = useState<KilnError | null>(null);
  const actions = useAction();
  const [priority, setPriority] = useState("");
  const load = useCallback(() => {
    call("jobs.get", { id }).then(
      (d) => {
        setDetails(d);
        setLoadError(null);
      },
      (e) => setLoadError(KilnError.from(e)),
    );
  }, [id]);
  useEffect(load, [load]);
  useEvents(useCallback((event) => event.type === "job_changed" && event.job.id === id && load(), [id, load]));
  const job: Job | undefined = jobById(id) ?? details?.job;
  // The log grows while the job runs.
  useEffect(() => {
    if (job?.state !== "running") return;
    const timer = setInterval(load, 2000);
    return () => clearInterval(timer);
  }, [job?.state, load]);
  const devices = new Map(store.devices.map((d) => [d.id, d.name]));
  const act = (key: string, work: () => Promise<unknown>) => actions.run(key, async () => {
    await work();
    load();
  });

  return (
    <aside class="drawer job-drawer" aria-label={`Job ${job?.name ?? id}`}>
      <header class="row">
        <h2 class="ellipsis">{job?.name ?? `Job ${id}`}</h2>
        {job && <StateBadge state={job.state} />}
        <span class="spacer" />
        <button class="button button-quiet" onClick={onClose} aria-label="Close the job">
          ✕
        </button>
      </header>
      {loadError && <ErrorNote error={loadError} />}
      {job && (
        <>
          <JobProgressBar job={job} />
          <div class="row">
            {(job.state === "failed" || job.state === "cancelled") && (
              <button class="button button-primary small" onClick={() => act("retry", () => call("jobs.retry", { ids: [id] }))}>
                Retry
              </button>
            )}
            {(job.state === "queued" || job.state === "running") && (
              <button class="button small" onClick={() => act("pause", () => call("jobs.pause", { ids: [id] }))}>
                Pause
              </button>
            )}
            {job.state === "paused" && (
              <button class="button small" onClick={() => act("resume", () => call("jobs.resume", { ids: [id] }))}>
                Resume
              </button>
            )}
            {(job.state === "queued" || job.state === "paused") && (
              <button class="button small" onClick={() => act("front", () => call("jobs.move_to_front", { id }))}>
                Move to front
              </button>
            )}
            {!isFinal(job.state) && (
              <button class="button small" onClick={() => act("cancel", () => call("jobs.cancel", { ids: [id] }))}>
                Cancel
              </button>
            )}
            {job.state === "done" && (
              <>
                <button class="button small" onClick={() => act("open", () => call("jobs.open", { id, folder: false }))}>
                  Open file
                </button>
                <button class="button small" onClick={() => act("folder", () => call("jobs.open", { id, folder: true }))}>
                  Open folder
                </button>
              </>
            )}
            {isFinal(job.state) && (
              <button class="button button-quiet small" title="Delete from the history; files stay" onClick={() => actions.run("remove", async () => {
                await call("jobs.remove", { ids: [id] });
                onClose();
              })}>
                Remove
              </button>
            )}
          </div>
          {actions.error && <ErrorNote error={actions.error} />}
          {job.error && <ErrorNote error={new KilnError(job.error)} />}
          <div class="row drawer-thumbs">
            <figure>
              <Thumb id={id} which="input" side={320} box={160} alt={`Input ${job.name}`} lazy={false} />
              <figcaption class="small muted">Input</figcaption>
            </figure>
            {job.state === "done" && (
              <figure>
                <Thumb id={id} which="output" side={320} box={160} version={job.finished_ms} alt={`Result of ${job.name}`} lazy={false} />
                <figcaption class="small muted">Result</figcaption>
              </figure>
            )}
          </div>
          <dl class="kv">
            <dt>Input</dt>
            <dd class="mono">{job.spec.input}</dd>
            <dt>Output folder</dt>
            <dd class="mono">{job.spec.output_dir}</dd>
            {job.spec.steps.map((step, i) => (
              <>
                <dt>Step {i + 1}</dt>
                <dd>{stepSummary(step)}</dd>
              </>
            ))}
            <dt>Device</dt>
            <dd>
              {job.device_id ? (devices.get(job.device_id) ?? job.device_id) : "not started"}
              {job.device_request ? ` (asked for ${devices.get(job.device_request) ?? job.device_request})` : ""}
            </dd>
            <dt>Queued</dt>
            <dd>{when(job.created_ms)}</dd>
            <dt>Started</dt>
            <dd>{when(job.started_ms)}</dd>
            <dt>Finished</dt>
            <dd>{when(job.finished_ms)}</dd>
            <dt>Attempts</dt>
            <dd>{job.attempts}</dd>
            <dt>Priority</dt>
            <dd>
              <form
                class="row"
                onSubmit={(e) => {
                  e.preventDefault();
                  if (priority.trim() !== "") void act("priority", () => call("jobs.set_priority", { id, priority: Math.round(Number(priority)) }));
                }}
              >
                <input class="number" type="number" step="1" placeholder={String(job.priority)} value={priority} onInput={(e) => setPriority((e.target as HTMLInputElement).value)} aria-label="Priority" />
                <button class="button small" disabled={priority.trim() === "" || !Number.isFinite(Number(priority))}>
                  Set
                </button>
                <span class="muted small">higher runs first</span>
              </form>
            </dd>
          </dl>
          {job.outcomes.map((outcome, i) => (
            <>
              <h3>
                Step {i + 1}: {fileName(outcome.output)}
              </h3>
              <OutcomeFacts outcome={outcome} devices={devices} />
            </>
          ))}
        </>
      )}
      <h3 class="section-gap">Log</h3>
      <ol class="job-log" aria-label="Log">
        {details?.log.map((line) => (
          <li class={`log-${line.level}`}>
            <span class="log-time">{new Date(line.at_ms).toLocaleTimeString()}</span>
            <span class="log-message">{line.message}</span>
          </li>
        ))}
        {details && details.log.length === 0 && <li class="muted">Nothing logged yet.</li>}
        {!details && !loadError && <li class="muted">Loading…</li>}
      </ol>
    </aside>
  );
}
