// Upscale: the page is a drop zone until something is dropped (files, folders, a pasted image,
// or files chosen with the picker); each image becomes a row at once with its thumbnail, size,
// live progress, result size and time; a finished row opens the before/after comparison. The
// settings panel on the right says how.

import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import type { Job, Library } from "../generated/kiln";
import { call, inTauri, KilnError } from "../api/client";
import { fromClipboard, fromDataTransfer, fromFileList, fromPaths, listenPathDrops, type Drop } from "../api/inputs";
import { jobById, reloadQueue, useJobProgress, useQueue } from "../api/queue";
import { useEvents } from "../api/store";
import { ErrorNote } from "../components/common";
import { CompareView } from "../components/compare";
import { bytes, duration, pixels } from "../components/format";
import { Thumb } from "../components/job-image";
import { isFinal, JobProgressBar, jobSeconds, StateBadge, upscaleOutcome, useAction } from "../components/jobs";
import { loadChoices, problem, saveChoices, UpscaleSettingsPanel, type Choices } from "../components/upscale-settings";
import { dismiss, select, submitDrop, useRows, type Row } from "./upscale-rows";

function useLibrary(): Library | null {
  const [library, setLibrary] = useState<Library | null>(null);
  const load = useCallback(() => void call("models.list", {}).then(setLibrary, () => undefined), []);
  useEffect(load, [load]);
  useEvents(useCallback((event) => event.type === "models_changed" && load(), [load]));
  return library;
}

export function UpscalePage() {
  const queue = useQueue();
  const { rows, selected } = useRows();
  const library = useLibrary();
  const [choices, setChoices] = useState<Choices>(loadChoices);
  const [dragging, setDragging] = useState(false);
  const [error, setError] = useState<KilnError | null>(null);
  const picker = useRef<HTMLInputElement>(null);
  const choicesNow = useRef(choices);
  choicesNow.current = choices;

  const change = (next: Choices) => {
    setChoices(next);
    saveChoices(next);
  };
  const take = (drop: Drop) => {
    const wrong = problem(choicesNow.current);
    if (wrong) {
      setError(new KilnError({ code: "invalid_input", message: `${wrong} Fix it in the settings, then drop again.` }));
      return;
    }
    setError(null);
    void submitDrop(drop, choicesNow.current);
  };

  // Pasted images, and paths dropped on the desktop window.
  useEffect(() => {
    const onPaste = (e: ClipboardEvent) => {
      if (e.target instanceof HTMLInputElement || e.target instanceof HTMLTextAreaElement) return;
      const drop = fromClipboard(e.clipboardData);
      if (drop.items.length) {
        e.preventDefault();
        take(drop);
      }
    };
    addEventListener("paste", onPaste);
    const stop = listenPathDrops({ onHover: setDragging, onDrop: (paths) => take(fromPaths(paths)) });
    return () => {
      removeEventListener("paste", onPaste);
      stop();
    };
  }, []);

  const hasFiles = (e: DragEvent) => !!e.dataTransfer && Array.from(e.dataTransfer.types).includes("Files");
  const dropHandlers = {
    onDragOver: (e: DragEvent) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      e.dataTransfer!.dropEffect = "copy";
      setDragging(true);
    },
    onDragLeave: (e: DragEvent) => {
      if (!(e.currentTarget as Node).contains(e.relatedTarget as Node | null)) setDragging(false);
    },
    onDrop: (e: DragEvent) => {
      if (!hasFiles(e)) return;
      e.preventDefault();
      setDragging(false);
      // The desktop window receives file drops as OS paths (listenPathDrops) instead.
      if (inTauri) return;
      fromDataTransfer(e.dataTransfer!, choicesNow.current.recursive).then(take, (err) => setError(KilnError.from(err)));
    },
  };

  const jobs = rows.map((r) => (r.job ? (jobById(r.job.id) ?? r.job) : undefined));
  const count = (test: (job: Job) => boolean) => jobs.filter((j) => j && test(j)).length;
  const chosen = jobs.find((j) => j?.id === selected && j.state === "done");
  const chooseFiles = () => picker.current?.click();

  return (
    <section class={`page upscale-page${dragging ? " dragging" : ""}`} {...dropHandlers}>
      <header class="page-head row">
        <h1>Upscale</h1>
        <span class="muted small">
          {rows.length
            ? `${rows.length} dropped · ${count((j) => j.state === "running")} running · ${count((j) => j.state === "queued" || j.state === "paused")} waiting · ${count((j) => j.state === "done")} done`
            : "Drop images to upscale them"}
        </span>
        <span class="spacer" />
        {rows.some((r, i) => r.skipped || r.error || (jobs[i] && isFinal(jobs[i]!.state))) && (
          <button class="button button-quiet small" onClick={() => dismiss((r) => !(r.skipped || r.error || (r.job && isFinal((jobById(r.job.id) ?? r.job).state))))}>
            Clear finished
          </button>
        )}
        <button class="button" onClick={chooseFiles}>
          Choose files
        </button>
        <input
          ref={picker}
          class="visually-hidden"
          type="file"
          multiple
          accept="image/png,image/jpeg,image/webp,image/tiff,image/bmp,.png,.jpg,.jpeg,.webp,.tif,.tiff,.bmp"
          aria-label="Images to upscale"
          onChange={(e) => {
            const input = e.target as HTMLInputElement;
            take(fromFileList(input.files));
            input.value = "";
          }}
        />
      </header>
      <div class="upscale-layout">
        <div class="upscale-main">
          {error && <ErrorNote error={error} />}
          {queue.list?.paused && <QueuePaused />}
          {chosen && <CompareView key={chosen.id} job={chosen} onClose={() => select(null)} />}
          {rows.length === 0 ? (
            <div class="drop-zone drop-big" role="region" aria-label="Drop zone">
              <div class="drop-icon" aria-hidden="true">
                ⤢
              </div>
              <p class="drop-title">Drop images here</p>
              <p class="muted">
                Files or folders{choices.recursive ? " (with their sub-folders)" : ""}, or paste an image with Ctrl+V.
              </p>
              <button class="button button-primary" onClick={chooseFiles}>
                Choose files
              </button>
              {!inTauri && <p class="muted small">They are sent to the Kiln this page is connected to, and the results are written there.</p>}
            </div>
          ) : (
            <>
              <div class="drop-zone drop-compact" role="region" aria-label="Drop zone">
                Drop more images or folders here, paste with Ctrl+V, or{" "}
                <button class="link link-accent" onClick={chooseFiles}>
                  choose files
                </button>
                .
              </div>
              <table class="table upscale-table">
                <thead>
                  <tr>
                    <th />
                    <th>Image</th>
                    <th>Progress</th>
                    <th>Result</th>
                    <th class="num">Time</th>
                    <th>State</th>
                    <th />
                  </tr>
                </thead>
                <tbody>
                  {rows.map((row, i) => (
                    <UpscaleRow row={row} job={jobs[i]} selected={jobs[i] != null && jobs[i]!.id === selected} />
                  ))}
                </tbody>
              </table>
            </>
          )}
          {dragging && (
            <div class="drop-overlay" aria-hidden="true">
              Drop to upscale
            </div>
          )}
        </div>
        <UpscaleSettingsPanel choices={choices} onChange={change} library={library} />
      </div>
    </section>
  );
}

/** Jobs wait while the queue is paused: say so where they were dropped. */
function QueuePaused() {
  const actions = useAction();
  return (
    <div class="queue-paused row">
      <span>The queue is paused: dropped images wait until it resumes.</span>
      <span class="spacer" />
      <button class="button small" disabled={actions.busy != null} onClick={() => actions.run("resume", () => call("queue.resume", {}).then(reloadQueue))}>
        Resume queue
      </button>
      {actions.error && <ErrorNote error={actions.error} />}
    </div>
  );
}

function UpscaleRow({ row, job, selected }: { row: Row; job?: Job; selected: boolean }) {
  const live = useJobProgress(job?.state === "running" ? job.id : undefined);
  const actions = useAction();
  const outcome = job && upscaleOutcome(job);
  const done = job?.state === "done";
  const inputSize = outcome ? pixels(outcome.input_width, outcome.input_height) : row.width ? pixels(row.width, row.height) : "";
  const state = job?.state ?? (row.skipped ? "skipped" : row.error ? "failed" : "sending");
  return (
    <tr class={`upscale-row${selected ? " selected" : ""}${done ? " clickable" : ""}`} data-state={state} data-job-id={job?.id} onClick={done ? () => select(selected ? null : job!.id) : undefined}>
      <td class="thumb-cell">{job ? <Thumb id={job.id} which="input" side={96} box={48} alt="" /> : <span class="thumb" style={{ width: "48px", height: "48px" }} />}</td>
      <td class="upscale-name">
        <div class="ellipsis" title={job?.spec.input ?? row.name}>
          {row.name}
        </div>
        <div class="muted small">
          {[inputSize, row.bytes != null ? bytes(row.bytes) : ""].filter(Boolean).join(" · ") || "\u00a0"}
        </div>
      </td>
      <td class="upscale-progress">
        {job ? (
          <JobProgressBar job={job} />
        ) : row.skipped ? (
          <span class="muted">Left out: {row.skipped}</span>
        ) : row.error ? (
          <ErrorNote error={row.error} />
        ) : (
          <span class="muted">{row.bytes != null ? "Sending…" : "Queuing…"}</span>
        )}
        {actions.error && <ErrorNote error={actions.error} />}
      </td>
      <td>{outcome ? pixels(outcome.output_width, outcome.output_height) : "—"}</td>
      <td class="num">{job ? duration(outcome?.seconds ?? jobSeconds(job, live?.elapsed_s)) : "—"}</td>
      <td>{job ? <StateBadge state={job.state} /> : <span class={`badge state-${state}`}>{state === "failed" ? "Not sent" : state === "skipped" ? "Skipped" : "Sending"}</span>}</td>
      <td class="row-actions" onClick={(e) => e.stopPropagation()}>
        {done && (
          <button class="button small" aria-pressed={selected} onClick={() => select(selected ? null : job!.id)}>
            Compare
          </button>
        )}
        {job && !isFinal(job.state) && (
          <button class="button button-quiet small" disabled={actions.busy != null} onClick={() => actions.run("cancel", () => call("jobs.cancel", { ids: [job.id] }))}>
            Cancel
          </button>
        )}
        {job && (job.state === "failed" || job.state === "cancelled") && (
          <button class="button small" disabled={actions.busy != null} onClick={() => actions.run("retry", () => call("jobs.retry", { ids: [job.id] }))}>
            Retry
          </button>
        )}
        {(!job || isFinal(job.state)) && !row.sending && (
          <button class="button button-quiet small" aria-label={`Take ${row.name} off the list`} title="Take off this list (the result and its history stay)" onClick={() => dismiss((r) => r !== row)}>
            ✕
          </button>
        )}
      </td>
    </tr>
  );
}
