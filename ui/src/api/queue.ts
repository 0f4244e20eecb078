// The job queue as the pages see it: the list (jobs in run order then finished ones, batches,
// sessions, whether the queue is paused, the workers) and each running job's live progress.
// Fetched once when first used, then kept current by `job_changed` (one row), `job_progress`
// (live bars, without refetching) and `queue_changed` (fetch the list again).

import { useEffect, useState } from "preact/hooks";
import type { Job, JobList, JobProgress, KilnEvent } from "../generated/kiln";
import { call, KilnError } from "./client";
import { listenEvents, listenResync } from "./store";

export interface QueueState {
  list: JobList | null;
  error: KilnError | null;
}

const state: QueueState = { list: null, error: null };
/** Live progress of running jobs, by job id; dropped when the job stops running. */
const progress = new Map<number, JobProgress>();

const listeners = new Set<() => void>();
const progressListeners = new Map<number, Set<() => void>>();
let version = 0;

function changed(): void {
  version++;
  for (const listener of listeners) listener();
}

function progressed(id: number): void {
  for (const listener of progressListeners.get(id) ?? []) listener();
}

// One fetch at a time; a request made meanwhile runs once the current one ends.
let fetching = false;
let again = false;
async function fetchList(): Promise<void> {
  if (fetching) {
    again = true;
    return;
  }
  fetching = true;
  try {
    do {
      again = false;
      try {
        state.list = await call("jobs.list", { states: [] });
        state.error = null;
        for (const id of [...progress.keys()]) {
          if (!state.list.jobs.some((j) => j.id === id && j.state === "running")) progress.delete(id);
        }
      } catch (error) {
        state.error = KilnError.from(error);
      }
      changed();
    } while (again);
  } finally {
    fetching = false;
  }
}

// Batch and session figures come from the list: after a job changes, fetch it again soon,
// once for a burst of changes.
let refetchTimer: ReturnType<typeof setTimeout> | undefined;
function refetchSoon(): void {
  clearTimeout(refetchTimer);
  refetchTimer = setTimeout(() => void fetchList(), 1000);
}

function onJobChanged(job: Job): void {
  const list = state.list;
  if (list) {
    const at = list.jobs.findIndex((j) => j.id === job.id);
    if (at >= 0) list.jobs = list.jobs.map((j) => (j.id === job.id ? job : j));
    else list.jobs = [job, ...list.jobs];
  }
  if (job.state !== "running" && progress.delete(job.id)) progressed(job.id);
  changed();
  refetchSoon();
}

function onEvent(event: KilnEvent): void {
  switch (event.type) {
    case "job_changed":
      onJobChanged(event.job);
      break;
    case "job_progress":
      progress.set(event.progress.job_id, event.progress);
      progressed(event.progress.job_id);
      break;
    case "queue_changed":
      void fetchList();
      break;
  }
}

let started = false;
function ensureStarted(): void {
  if (started) return;
  started = true;
  listenEvents(onEvent);
  listenResync(() => void fetchList());
  void fetchList();
}

/** The queue; re-renders the calling component whenever it changes (not on progress ticks). */
export function useQueue(): QueueState {
  const [, setSeen] = useState(version);
  useEffect(() => {
    ensureStarted();
    const listener = () => setSeen(version);
    listeners.add(listener);
    listener();
    return () => void listeners.delete(listener);
  }, []);
  return state;
}

/** A job's live progress, re-rendering only the calling component on each tick. */
export function useJobProgress(id: number | undefined): JobProgress | undefined {
  const [, setTick] = useState(0);
  useEffect(() => {
    if (id == null) return;
    ensureStarted();
    const listener = () => setTick((t) => t + 1);
    let set = progressListeners.get(id);
    if (!set) progressListeners.set(id, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) progressListeners.delete(id);
    };
  }, [id]);
  return id == null ? undefined : progress.get(id);
}

/** A job of the list, by id. */
export function jobById(id: number | undefined): Job | undefined {
  return id == null ? undefined : state.list?.jobs.find((j) => j.id === id);
}

/** Puts jobs a submission returned into the list at once, before the event or refetch. */
export function addJobs(jobs: Job[]): void {
  if (!state.list || jobs.length === 0) return;
  const known = new Set(state.list.jobs.map((j) => j.id));
  state.list.jobs = [...state.list.jobs, ...jobs.filter((j) => !known.has(j.id))];
  changed();
}

// Failures since the Queue page was last looked at (from this app's start) earn the rail a dot.
let seenAt = Date.now();

/** The Queue page is on screen: its failures have been seen. */
export function markQueueSeen(): void {
  const unseen = unseenFailures() > 0;
  seenAt = Date.now();
  if (unseen) changed();
}

export function unseenFailures(): number {
  return state.list?.jobs.filter((j) => j.state === "failed" && (j.finished_ms ?? 0) > seenAt).length ?? 0;
}

/** Fetch the list again now (after an action whose result the page wants at once). */
export function reloadQueue(): Promise<void> {
  return fetchList();
}
