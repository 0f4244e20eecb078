// Memory: a live map of every device's memory (other processes, Kiln's weights per model,
// Kiln's working memory, the pools' reserve, free), the budget, the ledger of allocations, and
// the RAM cache beside it.

import { useCallback, useEffect, useState } from "preact/hooks";
import type { DeviceMemory, MemoryStatus, Allocation } from "../generated/kiln";
import { call, KilnError } from "../api/client";
import { useEvents } from "../api/store";
import { ErrorNote } from "../components/common";
import { ago, bytes } from "../components/format";

interface Segment {
  key: string;
  label: string;
  bytes: number;
  class: string;
  /** For model segments: the file, and since when it has been loaded. */
  path?: string;
  since?: number;
}

/** The bar's parts, in order; what the device does not report is left out, not guessed. */
function segments(d: DeviceMemory): Segment[] {
  const pool = d.pool;
  const reserve = pool ? Math.max(0, pool.bytes_reserved - pool.bytes_in_use) : 0;
  const parts: Segment[] = [];
  if (d.other_bytes != null) parts.push({ key: "other", label: "Other processes", bytes: d.other_bytes, class: "seg-other" });
  for (const m of d.models) parts.push({ key: `model:${m.path}`, label: m.name, bytes: m.bytes, class: "seg-weights", path: m.path, since: m.loaded_at_ms });
  if (d.kiln_working_bytes > 0) parts.push({ key: "working", label: "Kiln working memory", bytes: d.kiln_working_bytes, class: "seg-working" });
  if (reserve > 0) parts.push({ key: "reserve", label: "Pool reserve", bytes: reserve, class: "seg-reserve" });
  const total = d.total_bytes ?? parts.reduce((s, p) => s + p.bytes, 0);
  const used = parts.reduce((s, p) => s + p.bytes, 0);
  if (d.total_bytes != null) parts.push({ key: "free", label: "Free", bytes: Math.max(0, total - used), class: "seg-free" });
  return parts;
}

/** The pools' figures in words; a busy device answers later, so its last reading is said to be one. */
function poolLine(d: DeviceMemory): string {
  if (!d.pool) return d.pool_pending ? " · pools: waiting for the device, busy with earlier work" : " · Kiln has not computed here yet";
  const figures = ` · pools: ${bytes(d.pool.bytes_in_use)} in use of ${bytes(d.pool.bytes_reserved)} reserved, ${d.pool.allocations} buffers`;
  return d.pool_pending ? `${figures} (the last reading: the device is busy with earlier work)` : figures;
}

function MemoryBar({ device, others, act }: { device: DeviceMemory; others: DeviceMemory[]; act: (work: Promise<unknown>) => void }) {
  const parts = segments(device);
  const [picked, setPicked] = useState<Segment | null>(null);
  const total = device.total_bytes ?? parts.reduce((s, p) => s + p.bytes, 0);
  const budgetAt = total ? Math.min(100, (100 * (device.budget_bytes + (device.other_bytes ?? 0))) / total) : null;
  return (
    <div class="vram-map">
      <div class="vram-bar" role="img" aria-label={`Memory of ${device.name}`}>
        {parts.map((p) => (
          <span
            class={`vram-seg ${p.class}${p.path ? " seg-clickable" : ""}`}
            data-segment={p.key}
            style={{ width: `${total ? (100 * p.bytes) / total : 0}%`, minWidth: p.bytes > 0 && p.class === "seg-weights" ? "3px" : undefined }}
            title={`${p.label}: ${bytes(p.bytes)}${p.since ? `, loaded ${ago(p.since)}` : ""}`}
            onClick={p.path ? () => setPicked(picked?.key === p.key ? null : p) : undefined}
          />
        ))}
        {budgetAt != null && <span class="vram-budget" style={{ left: `${budgetAt}%` }} title={`Kiln's budget ends here (${bytes(device.budget_bytes)})`} />}
      </div>
      {picked?.path && (
        <div class="segment-menu row small" role="group" aria-label={`Actions for ${picked.label}`}>
          <strong>{picked.label}</strong>
          <span class="muted">
            {bytes(picked.bytes)}
            {picked.since ? `, loaded ${ago(picked.since)}` : ""}
          </span>
          <button class="button small" onClick={() => act(call("models.unload", { path: picked.path!, device_id: device.device_id }))}>
            Unload
          </button>
          {others.map((o) => (
            <button class="button small" onClick={() => act(call("memory.transfer", { path: picked.path!, to: o.device_id }))}>
              Move to {o.name}
            </button>
          ))}
          <button class="button small" onClick={() => act(call("memory.transfer", { path: picked.path! }))}>
            Keep in RAM only
          </button>
        </div>
      )}
      <ul class="vram-legend">
        {parts.map((p) => (
          <li data-legend={p.key}>
            <span class={`swatch ${p.class}`} />
            {p.label} <span class="muted">{bytes(p.bytes)}</span>
          </li>
        ))}
      </ul>
    </div>
  );
}

export function MemoryPage() {
  const [status, setStatus] = useState<MemoryStatus | null>(null);
  const [ledger, setLedger] = useState<Allocation[]>([]);
  const [error, setError] = useState<KilnError | null>(null);
  const load = useCallback(() => {
    Promise.all([call("memory.status", {}), call("memory.allocations", {})]).then(
      ([s, l]) => {
        setStatus(s);
        setLedger(l);
      },
      (e) => setError(KilnError.from(e)),
    );
  }, []);
  useEffect(load, [load]);
  // The map changes when models move and when devices are read again (other processes, pools).
  useEvents(
    useCallback(
      (event) => {
        if (event.type === "models_changed" || event.type === "telemetry") load();
      },
      [load],
    ),
  );
  const act = (work: Promise<unknown>) => void work.then(load, (e) => setError(KilnError.from(e)));
  const [sort, setSort] = useState<{ key: keyof Allocation; down: boolean }>({ key: "bytes", down: true });
  const sorted = [...ledger].sort((a, b) => {
    const x = a[sort.key] ?? "";
    const y = b[sort.key] ?? "";
    const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
    return sort.down ? -order : order;
  });
  const header = (key: keyof Allocation, label: string, numeric = false) => (
    <th class={numeric ? "num" : ""} aria-sort={sort.key === key ? (sort.down ? "descending" : "ascending") : "none"}>
      <button class="link" onClick={() => setSort({ key, down: sort.key === key ? !sort.down : true })}>
        {label}
        {sort.key === key ? (sort.down ? " ▾" : " ▴") : ""}
      </button>
    </th>
  );

  return (
    <section class="page">
      <header class="page-head">
        <h1>Memory</h1>
      </header>
      {error && <ErrorNote error={error} />}
      {!status && <p class="muted">Reading memory…</p>}
      {status?.devices.map((d) => (
        <article class="card memory-card" data-device={d.device_id}>
          <header class="card-head row">
            <span class="card-title">{d.name}</span>
            <span class="muted small">
              {d.total_bytes != null ? `${bytes(d.used_bytes ?? 0)} of ${bytes(d.total_bytes)} in use` : "the device does not report its memory"}
            </span>
            <span class="spacer" />
            <button class="button small" onClick={() => act(call("memory.cleanup", { device_id: d.device_id }))} title="Give the pools' unused reserve back to the driver">
              Release reserve
            </button>
            <button class="button small" disabled={d.models.length === 0} onClick={() => act(call("memory.clear", { device_id: d.device_id }))}>
              Unload all
            </button>
          </header>
          <MemoryBar device={d} others={status.devices.filter((o) => o.device_id !== d.device_id)} act={act} />
          <p class="small muted">
            Budget {bytes(d.budget_bytes)} ({d.budget_source}) · Kiln weights {bytes(d.kiln_weights_bytes)}
            {poolLine(d)}
          </p>
          <BudgetForm device={d} onDone={load} onError={setError} />
        </article>
      ))}
      {status && (
        <article class="card memory-card" data-device="ram-cache">
          <header class="card-head row">
            <span class="card-title">RAM cache</span>
            <span class="muted small">
              {bytes(status.ram.used_bytes)} of {bytes(status.ram.budget_bytes)} · {status.ram.hits} hits, {status.ram.misses} misses
            </span>
          </header>
          <div class="vram-bar">
            {status.ram.models.map((m) => (
              <span class="vram-seg seg-weights" style={{ width: `${(100 * m.bytes) / Math.max(1, status.ram.budget_bytes)}%`, minWidth: "3px" }} title={`${m.name}: ${bytes(m.bytes)}`} />
            ))}
          </div>
          <table class="table">
            <tbody>
              {status.ram.models.map((m) => (
                <tr>
                  <td>{m.name}</td>
                  <td class="num">{bytes(m.bytes)}</td>
                  <td class="muted">{ago(m.last_used_ms)}</td>
                  <td>
                    <button class="button button-quiet small" onClick={() => act(call("models.pin", { path: m.path, pinned: !m.pinned }))}>
                      {m.pinned ? "Unpin" : "Pin"}
                    </button>
                  </td>
                </tr>
              ))}
              {status.ram.models.length === 0 && (
                <tr>
                  <td class="muted">Empty: models stay here after they are loaded, so the next load skips the disk.</td>
                </tr>
              )}
            </tbody>
          </table>
        </article>
      )}
      <h3 class="section-gap">Allocations</h3>
      <table class="table ledger">
        <thead>
          <tr>
            {header("device_id", "Device")}
            {header("owner", "Owner")}
            {header("component", "Component")}
            {header("kind", "Kind")}
            {header("bytes", "Bytes", true)}
            {header("since_ms", "Since")}
          </tr>
        </thead>
        <tbody>
          {sorted.map((a) => (
            <tr>
              <td>{a.device_id}</td>
              <td>{a.owner}</td>
              <td>{a.component}</td>
              <td>{a.kind}</td>
              <td class="num">{bytes(a.bytes)}</td>
              <td class="muted">{ago(a.since_ms)}</td>
            </tr>
          ))}
          {ledger.length === 0 && (
            <tr>
              <td colSpan={6} class="muted">
                Kiln holds no memory on any device. Load a model from the Models page.
              </td>
            </tr>
          )}
        </tbody>
      </table>
    </section>
  );
}

function BudgetForm({ device, onDone, onError }: { device: DeviceMemory; onDone: () => void; onError: (e: KilnError) => void }) {
  const [mib, setMib] = useState("");
  // What the engine would evict for this budget: least recently used first, never models in use.
  const wanted = Number(mib) * 1048576;
  const evicts: string[] = [];
  if (wanted > 0) {
    let kept = device.models.reduce((sum, m) => sum + m.bytes, 0);
    for (const m of [...device.models].filter((m) => !m.in_use).sort((x, y) => x.last_used_ms - y.last_used_ms)) {
      if (kept <= wanted) break;
      evicts.push(m.name);
      kept -= m.bytes;
    }
  }
  const set = (bytes?: number) =>
    call("memory.set_budget", bytes == null ? { device_id: device.device_id } : { device_id: device.device_id, bytes }).then(onDone, (e) => onError(KilnError.from(e)));
  return (
    <form
      class="row small"
      onSubmit={(e) => {
        e.preventDefault();
        const value = Number(mib);
        if (value > 0) void set(Math.round(value * 1048576));
      }}
    >
      <label>
        Budget (MiB) <input class="number" type="number" min="1" value={mib} placeholder={String(Math.round(device.budget_bytes / 1048576))} onInput={(e) => setMib((e.target as HTMLInputElement).value)} />
      </label>
      <button class="button small" disabled={!(Number(mib) > 0)}>
        Set
      </button>
      <button type="button" class="button button-quiet small" onClick={() => void set()}>
        Default
      </button>
      {evicts.length > 0 && <span class="muted budget-effect">Setting this unloads {evicts.join(", ")}</span>}
    </form>
  );
}
