// Live engine state for the pages: devices, their latest readings and health, chart history,
// settings and the connection. Filled from the engine once, then kept current by events.

import { useEffect, useState } from "preact/hooks";
import type {
  AppInfo,
  Device,
  DeviceHealth,
  DeviceStatus,
  KilnEvent,
  SeriesMetric,
  Settings,
} from "../generated/kiln";
import { call, subscribe, type Connection } from "./client";

/** One device's chart data: seconds since the epoch and one column per metric. */
export interface History {
  t: number[];
  series: Map<SeriesMetric, (number | null)[]>;
}

export interface State {
  devices: Device[];
  statuses: Map<string, DeviceStatus>;
  health: Map<string, DeviceHealth>;
  history: Map<string, History>;
  settings: Settings | null;
  app: AppInfo | null;
  connection: Connection;
  loadError: string | null;
}

const state: State = {
  devices: [],
  statuses: new Map(),
  health: new Map(),
  history: new Map(),
  settings: null,
  app: null,
  connection: { transport: "http", state: "connecting" },
  loadError: null,
};

const listeners = new Set<() => void>();
/** Counts changes, so a component can tell it missed one. */
let version = 0;
function changed(): void {
  version++;
  for (const listener of listeners) listener();
}

/** Re-renders the calling component whenever the state changes. */
export function useStore(): State {
  const [, setSeen] = useState(version);
  useEffect(() => {
    const listener = () => setSeen(version);
    listeners.add(listener);
    // Effects run after the first paint: catch up with anything that changed before.
    listener();
    return () => void listeners.delete(listener);
  }, []);
  return state;
}

/** What each chart metric reads from a status (mirrors the engine's `SeriesMetric`). */
export const METRICS: Record<SeriesMetric, (s: DeviceStatus) => number | undefined> = {
  utilization: (s) => s.utilization_percent?.value,
  memory_used: (s) => s.memory_used_bytes?.value,
  temperature: (s) => s.temperature_c?.value,
  power: (s) => s.power_watts?.value,
  clock_graphics: (s) => s.clock_graphics_mhz?.value,
  clock_memory: (s) => s.clock_memory_mhz?.value,
  fan: (s) => s.fan_percent?.value,
  pcie_tx: (s) => s.pcie_tx_bytes_per_s?.value,
  pcie_rx: (s) => s.pcie_rx_bytes_per_s?.value,
};

function historyWindowSeconds(): number {
  return (state.settings?.telemetry.history_minutes ?? 15) * 60;
}

function append(status: DeviceStatus): void {
  let history = state.history.get(status.device_id);
  if (!history) {
    history = { t: [], series: new Map() };
    state.history.set(status.device_id, history);
  }
  const at = status.sampled_at_ms / 1000;
  if (history.t.length && history.t[history.t.length - 1] >= at) return;
  const rows = history.t.length;
  history.t.push(at);
  for (const metric of Object.keys(METRICS) as SeriesMetric[]) {
    const value = METRICS[metric](status);
    let column = history.series.get(metric);
    if (value === undefined && !column) continue;
    if (!column) {
      column = new Array(rows).fill(null);
      history.series.set(metric, column);
    }
    column.push(value ?? null);
  }
  // Drop rows older than the history window.
  const cutoff = at - historyWindowSeconds();
  let drop = 0;
  while (drop < history.t.length && history.t[drop] < cutoff) drop++;
  if (drop) {
    history.t.splice(0, drop);
    for (const column of history.series.values()) column.splice(0, drop);
  }
}

function onEvent(event: KilnEvent): void {
  switch (event.type) {
    case "telemetry":
      for (const status of event.statuses) {
        state.statuses.set(status.device_id, status);
        append(status);
      }
      for (const health of event.health) state.health.set(health.device_id, health);
      break;
    case "devices_changed": {
      state.devices = event.devices;
      const ids = new Set(event.devices.map((d) => d.id));
      for (const map of [state.statuses, state.health, state.history] as Map<string, unknown>[]) {
        for (const id of [...map.keys()]) if (!ids.has(id)) map.delete(id);
      }
      void loadHistory();
      break;
    }
    case "settings_changed":
      state.settings = event.settings;
      break;
    default:
      // Benchmark events are handled by the pages that started them.
      for (const listener of eventListeners) listener(event);
      return;
  }
  for (const listener of eventListeners) listener(event);
  changed();
}

const eventListeners = new Set<(event: KilnEvent) => void>();
/** Calls `listener` for every engine event until the returned function is called. */
export function listenEvents(listener: (event: KilnEvent) => void): () => void {
  eventListeners.add(listener);
  return () => void eventListeners.delete(listener);
}

/** Calls `listener` for every engine event while the component is mounted. */
export function useEvents(listener: (event: KilnEvent) => void): void {
  useEffect(() => listenEvents(listener), [listener]);
}

const resyncListeners = new Set<() => void>();
/** Calls `listener` whenever events were missed and state must be fetched again. */
export function listenResync(listener: () => void): () => void {
  resyncListeners.add(listener);
  return () => void resyncListeners.delete(listener);
}

async function loadHistory(): Promise<void> {
  const histories = await Promise.all(
    state.devices.map((d) => call("devices.history", { device_id: d.id }).catch(() => null)),
  );
  for (const h of histories) {
    if (!h) continue;
    state.history.set(h.device_id, {
      t: h.t_ms.map((t) => t / 1000),
      series: new Map(h.series.map((s) => [s.metric, s.values])),
    });
  }
  changed();
}

/** Loads everything once and starts listening. */
export async function start(): Promise<void> {
  subscribe(
    onEvent,
    (connection) => {
      state.connection = connection;
      changed();
    },
    () => {
      void refresh();
      for (const listener of resyncListeners) listener();
    },
  );
  await refresh();
}

async function refresh(): Promise<void> {
  try {
    const [app, settings, snapshot] = await Promise.all([
      call("app.info", {}),
      call("settings.get", {}),
      call("devices.snapshot", {}),
    ]);
    state.app = app;
    state.settings = settings;
    state.devices = snapshot.devices.map((d) => d.device);
    for (const d of snapshot.devices) {
      if (d.status) state.statuses.set(d.device.id, d.status);
      if (d.health) state.health.set(d.device.id, d.health);
    }
    state.loadError = null;
    await loadHistory();
  } catch (error) {
    state.loadError = error instanceof Error ? error.message : String(error);
    changed();
  }
}
