// The frame: the left rail of domains with live hints, the page, the status strip, keyboard
// shortcuts (Ctrl+1..8 pages, Ctrl+K command palette).

import { useEffect, useMemo, useState } from "preact/hooks";
import { useStore, type State } from "./api/store";
import { call } from "./api/client";
import { DevicesPage } from "./pages/devices";
import { SettingsPage } from "./pages/settings";
import { ModelsPage } from "./pages/models";
import { MemoryPage } from "./pages/memory";
import { NotBuiltPage } from "./pages/not-built";
import { UpscalePage } from "./pages/upscale";
import { QueuePage } from "./pages/queue";
import { GalleryPage } from "./pages/gallery";
import { unseenFailures, useJobProgress, useQueue, type QueueState } from "./api/queue";
import { bytes, fixed } from "./components/format";

export type PageId = "devices" | "memory" | "models" | "queue" | "upscale" | "generate" | "gallery" | "settings";

const PAGES: { id: PageId; label: string; icon: string }[] = [
  { id: "devices", label: "Devices", icon: "▦" },
  { id: "memory", label: "Memory", icon: "▤" },
  { id: "models", label: "Models", icon: "◈" },
  { id: "queue", label: "Queue", icon: "☰" },
  { id: "upscale", label: "Upscale", icon: "⤢" },
  { id: "generate", label: "Generate", icon: "✦" },
  { id: "gallery", label: "Gallery", icon: "▣" },
  { id: "settings", label: "Settings", icon: "⚙" },
];

function pageFromHash(): PageId {
  const id = location.hash.replace(/^#\/?/, "").split(/[?&]/)[0] as PageId;
  return PAGES.some((p) => p.id === id) ? id : "devices";
}

/** The device the status strip follows: the first real GPU Kiln computes on, else the CPU. */
function activeDevice(state: State) {
  return (
    state.devices.find((d) => d.compute_backend && d.kind !== "cpu" && d.kind !== "software_gpu") ??
    state.devices.find((d) => d.kind === "cpu") ??
    state.devices[0]
  );
}

/** The Queue entry's hint: a dot while a job runs (red after an unseen failure) and how many wait or run. */
function QueueHint({ queue }: { queue: QueueState }) {
  const jobs = queue.list?.jobs ?? [];
  const running = jobs.some((j) => j.state === "running");
  const pending = jobs.filter((j) => j.state === "running" || j.state === "queued").length;
  const failed = unseenFailures();
  return (
    <>
      {failed > 0 ? <span class="dot dot-critical" title={`${failed} job${failed > 1 ? "s" : ""} failed`} /> : running ? <span class="dot dot-running" title="A job is running" /> : null}
      {pending > 0 ? <span title={`${pending} running or waiting`}>{pending}</span> : null}
    </>
  );
}

function railHint(id: PageId, state: State): string {
  if (id !== "devices") return "";
  const device = activeDevice(state);
  const status = device && state.statuses.get(device.id);
  if (!status) return "";
  if (status.temperature_c) return fixed(status.temperature_c.value, 0, "°C");
  if (status.utilization_percent) return fixed(status.utilization_percent.value, 0, "%");
  return "";
}

export function App() {
  const store = useStore();
  const queue = useQueue();
  const [page, setPage] = useState<PageId>(pageFromHash());
  const [palette, setPalette] = useState(false);

  useEffect(() => {
    const onHash = () => setPage(pageFromHash());
    const onKey = (e: KeyboardEvent) => {
      if (!(e.ctrlKey || e.metaKey)) return;
      const n = Number(e.key);
      if (n >= 1 && n <= PAGES.length) {
        e.preventDefault();
        location.hash = `#/${PAGES[n - 1].id}`;
      } else if (e.key.toLowerCase() === "k") {
        e.preventDefault();
        setPalette((open) => !open);
      }
    };
    // A file dropped where no page takes it would make the browser open it in place of Kiln.
    const keepFiles = (e: DragEvent) => {
      if (e.dataTransfer && Array.from(e.dataTransfer.types).includes("Files")) e.preventDefault();
    };
    addEventListener("hashchange", onHash);
    addEventListener("keydown", onKey);
    addEventListener("dragover", keepFiles);
    addEventListener("drop", keepFiles);
    return () => {
      removeEventListener("hashchange", onHash);
      removeEventListener("keydown", onKey);
      removeEventListener("dragover", keepFiles);
      removeEventListener("drop", keepFiles);
    };
  }, []);

  const worst = [...store.health.values()].reduce<"ok" | "warning" | "critical">(
    (w, h) => (h.level === "critical" || w === "critical" ? "critical" : h.level === "warning" || w === "warning" ? "warning" : "ok"),
    "ok",
  );

  return (
    <div class="frame">
      <nav class="rail" aria-label="Sections">
        <div class="brand">
          <img src="./favicon.png" alt="" width={28} height={28} />
          <span>Kiln</span>
        </div>
        {PAGES.map((p, i) => (
          <a
            href={`#/${p.id}`}
            class={`rail-item${page === p.id ? " rail-active" : ""}`}
            aria-current={page === p.id ? "page" : undefined}
            title={`${p.label} (Ctrl+${i + 1})`}
          >
            <span class="rail-icon" aria-hidden="true">
              {p.icon}
            </span>
            <span class="rail-label">{p.label}</span>
            <span class="rail-hint">
              {p.id === "devices" && worst !== "ok" ? <span class={`dot dot-${worst}`} title={`A device reports ${worst}`} /> : null}
              {railHint(p.id, store)}
              {p.id === "queue" && <QueueHint queue={queue} />}
            </span>
          </a>
        ))}
      </nav>
      <main class="main">
        {page === "devices" && <DevicesPage />}
        {page === "settings" && <SettingsPage />}
        {page === "models" && <ModelsPage />}
        {page === "memory" && <MemoryPage />}
        {page === "queue" && <QueuePage />}
        {page === "upscale" && <UpscalePage />}
        {page === "gallery" && <GalleryPage />}
        {page === "generate" && <NotBuiltPage page="Generate" />}
      </main>
      <StatusStrip />
      {palette && <Palette onClose={() => setPalette(false)} />}
    </div>
  );
}

function StatusStrip() {
  const store = useStore();
  const device = activeDevice(store);
  const status = device && store.statuses.get(device.id);
  const used = status?.memory_used_bytes?.value;
  const total = status?.memory_total_bytes?.value;
  const c = store.connection;
  const connection =
    c.transport === "ipc"
      ? "Desktop · IPC"
      : { connecting: "Served over HTTP · connecting", connected: "Served over HTTP · live", reconnecting: "Served over HTTP · reconnecting…", "no-token": "Served over HTTP · no token" }[c.state];
  return (
    <footer class="strip" aria-label="Status">
      {device ? (
        <>
          <span class="strip-device" title={device.id}>
            {device.name}
          </span>
          <span class="strip-figure">{fixed(status?.utilization_percent?.value, 0, "%")}</span>
          <span class="strip-bar" title={used != null && total ? `${bytes(used)} of ${bytes(total)}` : "memory not reported"}>
            <span style={{ width: used != null && total ? `${(100 * used) / total}%` : "0%" }} />
          </span>
          <span class="strip-figure wide">{used != null && total ? `${bytes(used)} / ${bytes(total)}` : "—"}</span>
        </>
      ) : (
        <span class="muted">No device</span>
      )}
      <RunningJob />
      <span class="spacer" />
      <span class={`strip-connection conn-${c.state}`}>{connection}</span>
      {store.app && <span class="muted">Kiln {store.app.version}</span>}
    </footer>
  );
}

/** The first running job and its live progress, linking to the Queue. */
function RunningJob() {
  const queue = useQueue();
  const job = queue.list?.jobs.find((j) => j.state === "running");
  const live = useJobProgress(job?.id);
  if (!job) return null;
  const progress = live?.progress ?? job.progress;
  return (
    <a class="strip-job" href="#/queue" title={`${job.kind}: ${job.name}`}>
      <span class="dot dot-running" />
      <span class="strip-job-name">{job.name}</span>
      <span class="strip-bar">
        <span class="strip-bar-job" style={{ width: `${progress * 100}%` }} />
      </span>
      <span class="strip-figure">{fixed(progress * 100, 0, "%")}</span>
    </a>
  );
}

interface Action {
  label: string;
  run: () => void | Promise<unknown>;
}

function Palette({ onClose }: { onClose: () => void }) {
  const store = useStore();
  const [query, setQuery] = useState("");
  const [selected, setSelected] = useState(0);
  const actions: Action[] = useMemo(
    () => [
      ...PAGES.map((p) => ({ label: `Go to ${p.label}`, run: () => void (location.hash = `#/${p.id}`) })),
      { label: "Find devices again", run: () => call("devices.rescan", {}) },
      { label: "Pause the queue", run: () => call("queue.pause", {}) },
      { label: "Resume the queue", run: () => call("queue.resume", {}) },
      ...store.devices
        .filter((d) => d.compute_backend)
        .map((d) => ({ label: `Benchmark ${d.name}`, run: () => call("devices.benchmark", { device_id: d.id }) })),
      ...store.devices.map((d) => ({ label: `Release Kiln's memory on ${d.name}`, run: () => call("devices.reset", { device_id: d.id }) })),
    ],
    [store.devices],
  );
  const shown = actions.filter((a) => a.label.toLowerCase().includes(query.toLowerCase()));
  const pick = (action?: Action) => {
    if (!action) return;
    onClose();
    void Promise.resolve(action.run()).catch(() => undefined);
  };
  return (
    <div class="palette-backdrop" onClick={onClose}>
      <div class="palette" role="dialog" aria-label="Command palette" onClick={(e) => e.stopPropagation()}>
        <input
          autoFocus
          placeholder="Type an action…"
          value={query}
          onInput={(e) => {
            setQuery((e.target as HTMLInputElement).value);
            setSelected(0);
          }}
          onKeyDown={(e) => {
            if (e.key === "Escape") onClose();
            if (e.key === "ArrowDown") setSelected((s) => Math.min(s + 1, shown.length - 1));
            if (e.key === "ArrowUp") setSelected((s) => Math.max(s - 1, 0));
            if (e.key === "Enter") pick(shown[selected]);
          }}
        />
        <ul>
          {shown.map((a, i) => (
            <li class={i === selected ? "selected" : ""} onClick={() => pick(a)}>
              {a.label}
            </li>
          ))}
          {shown.length === 0 && <li class="muted">No action matches.</li>}
        </ul>
      </div>
    </div>
  );
}
