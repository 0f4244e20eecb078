// Gallery: every result, newest first, in a grid of thumbnails grouped by day (made once by the
// engine, fetched as they scroll into view); filters by kind, model and date. A result opens
// large with its metadata and actions: open file or folder, compare, upscale it again.

import { useCallback, useEffect, useRef, useState } from "preact/hooks";
import type { Job } from "../generated/kiln";
import { call, KilnError } from "../api/client";
import { fromPaths } from "../api/inputs";
import { useEvents, useStore } from "../api/store";
import { ErrorNote } from "../components/common";
import { ago, duration, fileName, pixels, when } from "../components/format";
import { dataUrl, thumbnail, Thumb, useFullImage } from "../components/job-image";
import { modelName, stepSummary, upscaleOutcome, upscaleSettings, useAction } from "../components/jobs";
import { loadChoices } from "../components/upscale-settings";
import { showJob, submitDrop } from "./upscale-rows";

const KIND_LABEL: Record<string, string> = { upscale: "Upscaled", workflow: "Workflows", generate: "Generated", enhance: "Enhanced" };

type Since = "any" | "today" | "week" | "month";
const SINCE: { id: Since; label: string; ms: () => number }[] = [
  { id: "any", label: "Any time", ms: () => 0 },
  { id: "today", label: "Today", ms: () => new Date().setHours(0, 0, 0, 0) },
  { id: "week", label: "Last 7 days", ms: () => Date.now() - 7 * 86_400_000 },
  { id: "month", label: "Last 30 days", ms: () => Date.now() - 30 * 86_400_000 },
];

function useResults(): [Job[] | null, KilnError | null] {
  const [results, setResults] = useState<Job[] | null>(null);
  const [error, setError] = useState<KilnError | null>(null);
  const timer = useRef<ReturnType<typeof setTimeout> | undefined>(undefined);
  const load = useCallback(() => {
    call("gallery.list", { limit: 2000 }).then(
      (r) => {
        setResults(r);
        setError(null);
      },
      (e) => setError(KilnError.from(e)),
    );
  }, []);
  useEffect(load, [load]);
  // New results and removals; a burst of them is one fetch.
  useEvents(
    useCallback(
      (event) => {
        if ((event.type === "job_changed" && event.job.state === "done") || event.type === "queue_changed") {
          clearTimeout(timer.current);
          timer.current = setTimeout(load, 500);
        }
      },
      [load],
    ),
  );
  return [results, error];
}

function day(ms: number): string {
  const date = new Date(ms);
  const today = new Date();
  const yesterday = new Date(Date.now() - 86_400_000);
  if (date.toDateString() === today.toDateString()) return "Today";
  if (date.toDateString() === yesterday.toDateString()) return "Yesterday";
  return date.toLocaleDateString(undefined, { weekday: "long", year: "numeric", month: "long", day: "numeric" });
}

export function GalleryPage() {
  const [results, error] = useResults();
  const [kind, setKind] = useState("all");
  const [model, setModel] = useState("");
  const [since, setSince] = useState<Since>("any");
  const [open, setOpen] = useState<number | null>(null);

  const all = results ?? [];
  const kinds = [...new Set(all.map((j) => j.kind))];
  const models = [...new Set(all.map((j) => modelName(upscaleOutcome(j)?.model)))].sort();
  const from = SINCE.find((s) => s.id === since)!.ms();
  const shown = all.filter(
    (j) => (kind === "all" || j.kind === kind) && (!model || modelName(upscaleOutcome(j)?.model) === model) && (j.finished_ms ?? j.created_ms) >= from,
  );
  const days: { label: string; jobs: Job[] }[] = [];
  for (const job of shown) {
    const label = day(job.finished_ms ?? job.created_ms);
    if (days[days.length - 1]?.label === label) days[days.length - 1].jobs.push(job);
    else days.push({ label, jobs: [job] });
  }
  const at = shown.findIndex((j) => j.id === open);

  return (
    <section class="page">
      <header class="page-head row">
        <h1>Gallery</h1>
        <span class="muted small">{results ? `${shown.length} of ${all.length} results` : "Reading the results…"}</span>
        <span class="spacer" />
        <label class="small muted">
          Model{" "}
          <select value={model} onChange={(e) => setModel((e.target as HTMLSelectElement).value)} aria-label="Filter by model">
            <option value="">Any</option>
            {models.map((m) => (
              <option value={m}>{m}</option>
            ))}
          </select>
        </label>
        <label class="small muted">
          Date{" "}
          <select value={since} onChange={(e) => setSince((e.target as HTMLSelectElement).value as Since)} aria-label="Filter by date">
            {SINCE.map((s) => (
              <option value={s.id}>{s.label}</option>
            ))}
          </select>
        </label>
      </header>
      <div class="row filters" role="group" aria-label="Filter by kind">
        {["all", ...kinds].map((k) => (
          <button class={`chip${kind === k ? " chip-on" : ""}`} aria-pressed={kind === k} onClick={() => setKind(k)}>
            {k === "all" ? "All" : (KIND_LABEL[k] ?? k)}
            <span class="muted"> {k === "all" ? all.length : all.filter((j) => j.kind === k).length}</span>
          </button>
        ))}
      </div>
      {error && <ErrorNote error={error} />}
      {results && all.length === 0 && (
        <div class="empty">
          <p>No results yet.</p>
          <p class="muted">
            Drop images on the <a class="link-accent" href="#/upscale">Upscale</a> page: every finished image lands here.
          </p>
        </div>
      )}
      {results && all.length > 0 && shown.length === 0 && <p class="muted">No result matches these filters.</p>}
      {days.map((d) => (
        <>
          <h3 class="section-gap">{d.label}</h3>
          <div class="gallery-grid">
            {d.jobs.map((job) => (
              <GalleryCard job={job} onOpen={() => setOpen(job.id)} />
            ))}
          </div>
        </>
      ))}
      {at >= 0 && (
        <GalleryViewer
          key={shown[at].id}
          job={shown[at]}
          onClose={() => setOpen(null)}
          onStep={(by) => {
            const next = shown[at + by];
            if (next) setOpen(next.id);
          }}
        />
      )}
    </section>
  );
}

function GalleryCard({ job, onOpen }: { job: Job; onOpen: () => void }) {
  const outcome = upscaleOutcome(job);
  return (
    <button class="gallery-card" data-job-id={job.id} onClick={onOpen} title={outcome?.output}>
      <Thumb id={job.id} which="output" side={256} box={200} version={job.finished_ms} alt={`Result of ${job.name}`} />
      <span class="gallery-name ellipsis">{job.name}</span>
      <span class="muted small ellipsis">
        {outcome ? pixels(outcome.output_width, outcome.output_height) : (KIND_LABEL[job.kind] ?? job.kind)}
        {job.finished_ms ? ` · ${ago(job.finished_ms)}` : ""}
      </span>
      {outcome && <span class="muted small ellipsis">{modelName(outcome.model)}</span>}
    </button>
  );
}

function GalleryViewer({ job, onClose, onStep }: { job: Job; onClose: () => void; onStep: (by: number) => void }) {
  const store = useStore();
  const outcome = upscaleOutcome(job);
  const settings = upscaleSettings(job);
  const [full, fullError] = useFullImage(job.id, "output", job.finished_ms);
  const [preview, setPreview] = useState<string | null>(null);
  const actions = useAction();
  const device = outcome && (store.devices.find((d) => d.id === outcome.device_id)?.name ?? outcome.device_id);

  useEffect(() => {
    thumbnail(job.id, "output", 256, job.finished_ms).then((i) => setPreview(dataUrl(i)), () => undefined);
  }, [job.id]);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") onClose();
      else if (e.key === "ArrowLeft") onStep(-1);
      else if (e.key === "ArrowRight") onStep(1);
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  });
  const compare = () => {
    showJob(job);
    location.hash = "#/upscale";
  };
  const again = () => {
    if (!outcome) return;
    void submitDrop(fromPaths([outcome.output]), loadChoices());
    location.hash = "#/upscale";
  };

  return (
    <div class="viewer-backdrop" onClick={onClose}>
      <div class="viewer" role="dialog" aria-label={`Result ${job.name}`} onClick={(e) => e.stopPropagation()}>
        <div class="viewer-image">
          {full ? <img src={full.url} alt={`Result of ${job.name}`} /> : preview ? <img class="viewer-preview" src={preview} alt="" /> : <p class="muted">Loading…</p>}
          {fullError && <ErrorNote error={fullError} />}
        </div>
        <aside class="viewer-side">
          <header class="row">
            <h2 class="ellipsis">{job.name}</h2>
            <span class="spacer" />
            <button class="button button-quiet" onClick={onClose} aria-label="Close the result">
              ✕
            </button>
          </header>
          <div class="row">
            <button class="button small" onClick={() => actions.run("open", () => call("jobs.open", { id: job.id, folder: false }))}>
              Open file
            </button>
            <button class="button small" onClick={() => actions.run("folder", () => call("jobs.open", { id: job.id, folder: true }))}>
              Open folder
            </button>
            {full && outcome && (
              // Browsers on another machine (kiln serve) take the file this way.
              <a class="button small" href={full.url} download={outcome.output.split(/[\\/]/).pop()}>
                Download
              </a>
            )}
            {outcome && (
              <button class="button small" onClick={compare} title="Before and after on the Upscale page">
                Compare
              </button>
            )}
            {outcome && (
              <button class="button small" onClick={again} title="Queue this result through the Upscale page's settings">
                Upscale again
              </button>
            )}
          </div>
          {actions.error && <ErrorNote error={actions.error} />}
          <dl class="kv">
            {outcome && (
              <>
                <dt>Input</dt>
                <dd>
                  {fileName(job.spec.input)} · {pixels(outcome.input_width, outcome.input_height)}
                </dd>
                <dt>Result</dt>
                <dd>{pixels(outcome.output_width, outcome.output_height)}</dd>
                <dt>File</dt>
                <dd class="mono">{outcome.output}</dd>
                <dt>Model</dt>
                <dd>{modelName(outcome.model)}</dd>
                <dt>AutoV2</dt>
                <dd class="mono">{outcome.model_autov2 ?? "—"}</dd>
                <dt>Device</dt>
                <dd>{device}</dd>
                <dt>Precision</dt>
                <dd>{outcome.precision}</dd>
                <dt>Tile</dt>
                <dd>{outcome.tile} px</dd>
                <dt>TTA</dt>
                <dd>{outcome.tta ? "on" : "off"}</dd>
                <dt>Took</dt>
                <dd>{duration(outcome.seconds)}</dd>
              </>
            )}
            {settings && (
              <>
                <dt>Settings</dt>
                <dd>{stepSummary({ kind: "upscale", ...settings })}</dd>
              </>
            )}
            <dt>Finished</dt>
            <dd>{when(job.finished_ms)}</dd>
          </dl>
          <p class="muted small">← → for the previous and next result, Esc to close.</p>
        </aside>
      </div>
    </div>
  );
}
