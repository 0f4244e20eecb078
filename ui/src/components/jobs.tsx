// Pieces the Upscale, Queue and Gallery pages share about jobs: the state badge, the live
// progress bar (tiles, ETA), what an upscale produced, and running an action with its error.

import { useState } from "preact/hooks";
import type { Job, JobState, Step, UpscaleOutcome, UpscaleSettings } from "../generated/kiln";
import { KilnError } from "../api/client";
import { useJobProgress } from "../api/queue";
import { duration, fileName } from "./format";

export const STATE_LABEL: Record<JobState, string> = {
  queued: "Waiting",
  running: "Running",
  paused: "Paused",
  done: "Done",
  failed: "Failed",
  cancelled: "Cancelled",
};

export function isFinal(state: JobState): boolean {
  return state === "done" || state === "failed" || state === "cancelled";
}

export function StateBadge({ state }: { state: JobState }) {
  return <span class={`badge state-${state}`}>{STATE_LABEL[state]}</span>;
}

/** The last upscale step's outcome, once it finished. */
export function upscaleOutcome(job: Job): UpscaleOutcome | undefined {
  for (let i = job.outcomes.length - 1; i >= 0; i--) {
    const outcome = job.outcomes[i];
    if (outcome.kind === "upscale") return outcome;
  }
  return undefined;
}

/** The first upscale step's settings. */
export function upscaleSettings(job: Job): UpscaleSettings | undefined {
  return job.spec.steps.find((s) => s.kind === "upscale");
}

/** The model's file name without its folder and extension. */
export function modelName(path: string | undefined): string {
  if (!path) return "bundled model";
  return fileName(path).replace(/\.(safetensors|pth|pt|ckpt|bin|param|onnx)$/i, "");
}

/** A step's settings in one line. */
export function stepSummary(step: Step): string {
  const size = step.size.by === "model" ? "model's scale" : step.size.by === "scale" ? `×${step.size.scale}` : `${step.size.width} px wide`;
  return [
    `${step.kind}: ${modelName(step.model)}`,
    size,
    step.format === "png" ? "PNG" : `${step.format.toUpperCase()} ${step.quality}`,
    `alpha ${step.alpha}`,
    step.tta ? "TTA" : "",
    `tile ${step.tile ?? "auto"}`,
    `precision ${step.precision}`,
  ]
    .filter(Boolean)
    .join(" · ");
}

/** How long a job ran (finished) or has been running. */
export function jobSeconds(job: Job, elapsed?: number): number | undefined {
  if (elapsed != null) return elapsed;
  if (job.started_ms == null) return undefined;
  const end = job.finished_ms ?? (job.state === "running" ? Date.now() : undefined);
  return end == null ? undefined : (end - job.started_ms) / 1000;
}

export function ProgressBar({ value, state, label }: { value: number; state: JobState | "batch"; label: string }) {
  const percent = Math.max(0, Math.min(100, value * 100));
  return (
    <span class={`progress progress-${state}`} role="progressbar" aria-label={label} aria-valuemin={0} aria-valuemax={100} aria-valuenow={Math.round(percent)}>
      <span style={{ width: `${percent}%` }} />
    </span>
  );
}

/** A job's progress: the bar and a line saying where it stands (tiles and ETA while running). */
export function JobProgressBar({ job }: { job: Job }) {
  const live = useJobProgress(job.state === "running" ? job.id : undefined);
  const value = job.state === "done" ? 1 : (live?.progress ?? job.progress);
  let text: string;
  switch (job.state) {
    case "running":
      text = live
        ? [
            `${(value * 100).toFixed(0)}%`,
            live.steps > 1 ? `step ${live.step + 1}/${live.steps}` : "",
            live.tiles_total > 0 ? `tile ${live.tiles_done}/${live.tiles_total}` : "",
            live.eta_s != null ? `${duration(live.eta_s)} left` : "",
          ]
            .filter(Boolean)
            .join(" · ")
        : `${(value * 100).toFixed(0)}% · starting`;
      break;
    case "queued":
      text = "waiting";
      break;
    case "paused":
      text = value > 0 ? `paused at ${(value * 100).toFixed(0)}%` : "paused";
      break;
    case "done":
      text = `done in ${duration(jobSeconds(job))}`;
      break;
    case "failed":
      text = job.error?.message ?? "failed";
      break;
    case "cancelled":
      text = "cancelled";
      break;
  }
  return (
    <div class="job-progress">
      <ProgressBar value={value} state={job.state} label={`Progress of ${job.name}`} />
      <span class="job-progress-text" title={text}>
        {text}
      </span>
    </div>
  );
}

/** Runs engine actions one at a time, remembering which runs and the last error. */
export function useAction(): {
  run: (key: string, work: () => Promise<unknown>) => Promise<void>;
  busy: string | null;
  error: KilnError | null;
  clear: () => void;
} {
  const [busy, setBusy] = useState<string | null>(null);
  const [error, setError] = useState<KilnError | null>(null);
  const run = async (key: string, work: () => Promise<unknown>) => {
    setBusy(key);
    setError(null);
    try {
      await work();
    } catch (e) {
      setError(KilnError.from(e));
    } finally {
      setBusy(null);
    }
  };
  return { run, busy, error, clear: () => setError(null) };
}
