// The Upscale page's list: one row per dropped image, shown at once and tied to its job when the
// engine has queued it (or to the reason it was left out). Kept while the app is open, so the
// list survives a visit to another page; the Gallery can add a result to it for comparison.

import { useEffect, useState } from "preact/hooks";
import type { Job, Submitted } from "../generated/kiln";
import { call, KilnError } from "../api/client";
import { fileName } from "../components/format";
import { toInput, type Drop, type Gathered } from "../api/inputs";
import { addJobs } from "../api/queue";
import { submission, type Choices } from "../components/upscale-settings";

export interface Row {
  key: string;
  name: string;
  /** The file's size, for browser files. */
  bytes?: number;
  /** The input's size in pixels, read by the browser for its own files. */
  width?: number;
  height?: number;
  /** The job as queued; the queue's copy is newer. */
  job?: Job;
  /** Why the input did not become a job. */
  skipped?: string;
  /** The submission failed. */
  error?: KilnError;
  sending?: boolean;
}

let rows: Row[] = [];
/** The job whose comparison is open. */
let selected: number | null = null;
const listeners = new Set<() => void>();
let version = 0;
let counter = 0;

function changed(): void {
  version++;
  for (const listener of listeners) listener();
}

export function useRows(): { rows: Row[]; selected: number | null } {
  const [, setSeen] = useState(version);
  useEffect(() => {
    const listener = () => setSeen(version);
    listeners.add(listener);
    listener();
    return () => void listeners.delete(listener);
  }, []);
  return { rows, selected };
}

export function select(id: number | null): void {
  selected = id;
  changed();
}

/** Takes rows off the list (not out of the queue's history). */
export function dismiss(keep: (row: Row) => boolean): void {
  rows = rows.filter(keep);
  if (selected != null && !rows.some((r) => r.job?.id === selected)) selected = null;
  changed();
}

/** Shows a finished job here, selected for comparison (from the Gallery). */
export function showJob(job: Job): void {
  if (!rows.some((r) => r.job?.id === job.id)) rows = [{ key: `job-${job.id}`, name: job.name, job }, ...rows];
  select(job.id);
}

function update(row: Row, patch: Partial<Row>): void {
  Object.assign(row, patch);
  rows = [...rows];
  changed();
}

/** Reads the pixel size of the browser's own files, one at a time, for the rows. */
async function measure(pending: { row: Row; file: File }[]): Promise<void> {
  for (const { row, file } of pending) {
    const url = URL.createObjectURL(file);
    const image = new Image();
    const loaded = await new Promise<boolean>((ok) => {
      image.onload = () => ok(true);
      image.onerror = () => ok(false);
      image.src = url;
    });
    URL.revokeObjectURL(url);
    if (loaded && !row.width) update(row, { width: image.naturalWidth, height: image.naturalHeight });
  }
}

type Sendable = { row: Row; item: Extract<Gathered, { kind: "file" | "path" }> };

/** Browser files go in requests of about this many bytes (base64 adds a third). */
const CHUNK_BYTES = 24 << 20;

function chunks(sendable: Sendable[]): Sendable[][] {
  const out: Sendable[][] = [];
  let size = 0;
  for (const s of sendable) {
    const bytes = s.item.kind === "file" ? s.item.file.size : 0;
    if (!out.length || (size > 0 && size + bytes > CHUNK_BYTES)) {
      out.push([]);
      size = 0;
    }
    out[out.length - 1].push(s);
    size += bytes;
  }
  return out;
}

/** Ties a chunk's rows to what the engine made of them. */
function settle(chunk: Sendable[], result: Submitted): void {
  if (chunk[0].item.kind === "path") {
    // A path may be a folder of many images: its row gives way to one row per job.
    const made: Row[] = [
      ...result.jobs.map((job) => ({ key: `job-${job.id}`, name: job.name, job })),
      ...result.skipped.map((s) => ({ key: `skip-${counter++}`, name: fileName(s.input), skipped: s.reason })),
    ];
    const placeholders = new Set(chunk.map((s) => s.row));
    const at = rows.findIndex((r) => placeholders.has(r));
    rows = rows.filter((r) => !placeholders.has(r));
    rows.splice(Math.max(0, at), 0, ...made);
    changed();
    return;
  }
  // Uploads come back in order, less those skipped (named by their upload name).
  const skipped = [...result.skipped];
  let next = 0;
  for (const { row, item } of chunk) {
    const name = item.name.split("/").pop() ?? item.name;
    const at = skipped.findIndex((s) => s.input === name);
    const job = at >= 0 ? undefined : result.jobs[next++];
    if (at >= 0) update(row, { sending: false, skipped: skipped.splice(at, 1)[0].reason });
    else if (job) update(row, { sending: false, job });
    else update(row, { sending: false, skipped: "the engine queued no job for it" });
  }
}

/** Shows a row for each dropped item at once, then queues them with the chosen settings. */
export async function submitDrop(drop: Drop, choices: Choices): Promise<void> {
  if (drop.items.length === 0) return;
  const made = drop.items.map((item) => {
    const row: Row = { key: `drop-${counter++}`, name: item.name, sending: item.kind !== "skip" };
    if (item.kind === "skip") row.skipped = item.reason;
    if (item.kind === "file") row.bytes = item.file.size;
    return { row, item };
  });
  rows = [...made.map((m) => m.row), ...rows];
  changed();
  void measure(made.flatMap(({ row, item }) => (item.kind === "file" ? [{ row, file: item.file }] : [])));

  const base = submission(choices);
  const sendable = made.filter((m): m is Sendable => m.item.kind !== "skip");
  // Several requests make several batches of the same name: big drops are split so no one
  // request carries hundreds of megabytes.
  const batch_name = drop.folder && sendable.length > 1 ? drop.folder : undefined;
  for (const chunk of chunks(sendable)) {
    try {
      const inputs = await Promise.all(chunk.map((s) => toInput(s.item)));
      const result = await call("jobs.submit", { ...base, inputs, batch_name });
      addJobs(result.jobs);
      settle(chunk, result);
    } catch (e) {
      const error = KilnError.from(e);
      for (const { row } of chunk) update(row, { sending: false, error });
    }
  }
}
