// Devices: one card per device with live figures, history charts and health; a details panel
// with drivers, capabilities, limits, processes, power, recommendations and the benchmark.

import { useState } from "preact/hooks";
import type { Device, DeviceHealth, DeviceStatus, SeriesMetric } from "../generated/kiln";
import { useStore } from "../api/store";
import { call, KilnError } from "../api/client";
import { Chart } from "../components/chart";
import { bytes, fixed, rate } from "../components/format";
import { DeviceDetailsPanel } from "./device-details";
import { ErrorNote, HealthBadge } from "../components/common";

const KIND_LABEL: Record<Device["kind"], string> = {
  discrete_gpu: "Discrete GPU",
  integrated_gpu: "Integrated GPU",
  virtual_gpu: "Virtual GPU",
  software_gpu: "Software GPU",
  cpu: "CPU",
  other: "GPU",
};

interface ChartSpec {
  metric: SeriesMetric;
  label: string;
  color: string;
  format: (v: number | null | undefined) => string;
  range?: [number, number];
}

const CHARTS: ChartSpec[] = [
  { metric: "utilization", label: "Utilisation", color: "#5b9cf5", format: (v) => fixed(v, 0, "%"), range: [0, 100] },
  { metric: "memory_used", label: "Memory", color: "#c07cf0", format: (v) => bytes(v) },
  { metric: "temperature", label: "Temperature", color: "#f0a04b", format: (v) => fixed(v, 0, "°C") },
  { metric: "power", label: "Power", color: "#e8702a", format: (v) => fixed(v, 0, "W") },
  { metric: "clock_graphics", label: "Core clock", color: "#4fc1a6", format: (v) => fixed(v, 0, "MHz") },
  { metric: "clock_memory", label: "Memory clock", color: "#7fb8d8", format: (v) => fixed(v, 0, "MHz") },
  { metric: "pcie_rx", label: "PCIe receive", color: "#9aa5b1", format: (v) => rate(v) },
];

export function DevicesPage() {
  const store = useStore();
  const [rescanError, setRescanError] = useState<KilnError | null>(null);
  const [rescanning, setRescanning] = useState(false);

  const rescan = async () => {
    setRescanning(true);
    setRescanError(null);
    try {
      await call("devices.rescan", {});
    } catch (error) {
      setRescanError(KilnError.from(error));
    } finally {
      setRescanning(false);
    }
  };

  return (
    <section class="page" aria-labelledby="devices-title">
      <header class="page-head">
        <h1 id="devices-title">Devices</h1>
        <span class="muted">
          {store.devices.length} {store.devices.length === 1 ? "device" : "devices"}
        </span>
        <span class="spacer" />
        <button class="button" onClick={rescan} disabled={rescanning}>
          {rescanning ? "Looking…" : "Find devices again"}
        </button>
      </header>
      {rescanError && <ErrorNote error={rescanError} />}
      {store.loadError && <ErrorNote error={new KilnError({ code: "internal", message: store.loadError })} />}
      {store.devices.length === 0 && !store.loadError ? (
        <div class="empty">
          <p>No devices yet.</p>
          <p class="muted">Kiln lists every GPU adapter, its driver's telemetry and the CPU. If this stays empty, the engine is still starting.</p>
        </div>
      ) : (
        <div class="device-grid">
          {store.devices.map((device) => (
            <DeviceCard key={device.id} device={device} />
          ))}
        </div>
      )}
    </section>
  );
}

function unavailableReason(status: DeviceStatus | undefined): string {
  if (!status) return "no reading yet";
  return status.unavailable.map((u) => `${u.source}: ${u.reason}`).join("\n") || "this device does not report it";
}

function Figure({ label, value, sub, title }: { label: string; value: string; sub?: string; title?: string }) {
  const missing = value === "—";
  return (
    <div class={`figure${missing ? " figure-missing" : ""}`} title={missing ? `Not available\n${title ?? ""}` : title}>
      <div class="figure-label">{label}</div>
      <div class="figure-value">{missing ? "n/a" : value}</div>
      <div class="figure-sub">{sub ?? "\u00a0"}</div>
    </div>
  );
}

function MemoryBar({ status }: { status?: DeviceStatus }) {
  const used = status?.memory_used_bytes?.value;
  const total = status?.memory_total_bytes?.value;
  const kiln = status?.kiln_pools?.value.bytes_reserved ?? 0;
  if (used == null || !total) return <div class="membar membar-empty" />;
  const other = Math.max(0, used - kiln);
  return (
    <div class="membar" title={`${bytes(used)} of ${bytes(total)} in use${kiln ? `, ${bytes(kiln)} of it Kiln's` : ""}`}>
      <div class="membar-other" style={{ width: `${(100 * other) / total}%` }} />
      <div class="membar-kiln" style={{ width: `${(100 * kiln) / total}%` }} />
    </div>
  );
}

function DeviceCard({ device }: { device: Device }) {
  const store = useStore();
  const [open, setOpen] = useState(false);
  const status = store.statuses.get(device.id);
  const health: DeviceHealth | undefined = store.health.get(device.id);
  const history = store.history.get(device.id);
  const reason = unavailableReason(status);
  const window = (store.settings?.telemetry.history_minutes ?? 15) * 60;
  // The driver people know the device by: its first (Vulkan, DX12 or Metal) adapter's.
  const mainDriver = device.adapters.find((a) => a.backend !== "gl") ?? device.adapters[0];
  const span = history && history.t.length > 1 ? history.t[history.t.length - 1] - history.t[0] : 0;
  // Show at least two minutes, growing to the whole history as it fills.
  const visible = Math.min(window, Math.max(120, span));
  const memoryPercent =
    status?.memory_used_bytes && status.memory_total_bytes
      ? (100 * status.memory_used_bytes.value) / status.memory_total_bytes.value
      : undefined;
  const charts = CHARTS.filter((c) => history?.series.get(c.metric)?.some((v) => v != null));
  const missingCharts = CHARTS.filter((c) => !charts.includes(c) && c.metric !== "pcie_rx");

  return (
    <article class="card device-card" data-device-id={device.id} data-sampled-at={status?.sampled_at_ms ?? 0} aria-label={device.name}>
      <header class="card-head">
        <div class="card-title">
          <h2>{device.name}</h2>
          <div class="muted small">
            {device.vendor.name} · {KIND_LABEL[device.kind]}
            {device.compute_backend ? ` · computes on ${device.compute_backend}` : " · no compute backend"}
            {mainDriver ? ` · ${mainDriver.driver_info || mainDriver.driver}` : ""}
          </div>
        </div>
        <HealthBadge health={health} />
      </header>

      {health && health.reasons.length > 0 && (
        <ul class="health-reasons">
          {health.reasons.map((r) => (
            <li class={`reason reason-${r.level}`}>{r.message}</li>
          ))}
        </ul>
      )}

      {device.kind === "software_gpu" ? (
        <p class="software-note">
          A GPU interface implemented on the CPU: its load and memory are the CPU card's. Kiln can run kernels on it for
          tests; the CPU backend is usually faster for real work.
        </p>
      ) : (
      <div class="figures">
        <Figure
          label={device.kind === "cpu" ? "CPU load" : "Utilisation"}
          value={fixed(status?.utilization_percent?.value, 0, "%")}
          sub={status?.utilization_percent ? `via ${status.utilization_percent.source}` : undefined}
          title={reason}
        />
        <Figure
          label={device.kind === "cpu" ? "RAM" : "VRAM"}
          value={status?.memory_used_bytes ? bytes(status.memory_used_bytes.value) : "—"}
          sub={status?.memory_total_bytes ? `of ${bytes(status.memory_total_bytes.value)}${memoryPercent != null ? ` · ${memoryPercent.toFixed(0)}%` : ""}` : undefined}
          title={reason}
        />
        <Figure
          label="Temperature"
          value={fixed(status?.temperature_c?.value, 0, "°C")}
          sub={status?.temperature_hotspot_c ? `hotspot ${fixed(status.temperature_hotspot_c.value, 0, "°C")}` : undefined}
          title={reason}
        />
        <Figure
          label="Power"
          value={fixed(status?.power_watts?.value, 0, "W")}
          sub={status?.power_limit_watts ? `limit ${fixed(status.power_limit_watts.value, 0, "W")}` : undefined}
          title={reason}
        />
      </div>
      )}
      {device.kind !== "software_gpu" && <MemoryBar status={status} />}

      <div class="charts">
        {charts.map((c) => (
          <Chart
            key={c.metric}
            label={c.label}
            t={history!.t}
            values={history!.series.get(c.metric)!}
            format={c.format}
            color={c.color}
            range={c.range}
            window={visible}
          />
        ))}
      </div>
      {missingCharts.length > 0 && device.kind !== "software_gpu" && (
        <p class="muted small not-available" title={reason}>
          Not reported here: {missingCharts.map((c) => c.label.toLowerCase()).join(", ")}.
        </p>
      )}

      <footer class="card-foot">
        <button class="button button-quiet" aria-expanded={open} onClick={() => setOpen(!open)}>
          {open ? "Hide details" : "Details, processes & benchmark"}
        </button>
      </footer>
      {open && <DeviceDetailsPanel device={device} status={status} />}
    </article>
  );
}
