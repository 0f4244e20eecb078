// A device's details panel: drivers, capabilities and limits, clocks and PCIe, the processes
// using it, power limits, recommended settings, and the benchmark beside published peaks.

import { useCallback, useEffect, useState } from "preact/hooks";
import type { BenchmarkResult, Device, DeviceDetails, DeviceStatus, KilnEvent, Recommendation, ResetResult } from "../generated/kiln";
import { call, KilnError } from "../api/client";
import { useEvents } from "../api/store";
import { bytes, fixed, hex, rate } from "../components/format";
import { ErrorNote } from "../components/common";

export function DeviceDetailsPanel({ device, status }: { device: Device; status?: DeviceStatus }) {
  const [details, setDetails] = useState<DeviceDetails | null>(null);
  const [recommendation, setRecommendation] = useState<Recommendation | null>(null);
  const [error, setError] = useState<KilnError | null>(null);

  const load = useCallback(async () => {
    setError(null);
    const [d, r] = await Promise.allSettled([
      call("devices.details", { device_id: device.id }),
      call("devices.optimize", { device_id: device.id }),
    ]);
    if (d.status === "fulfilled") setDetails(d.value);
    if (r.status === "fulfilled") setRecommendation(r.value);
    const failed = [d, r].find((x) => x.status === "rejected") as PromiseRejectedResult | undefined;
    if (failed) setError(KilnError.from(failed.reason));
  }, [device.id]);
  useEffect(() => void load(), [load]);

  return (
    <div class="details">
      {error && <ErrorNote error={error} />}
      {!details ? (
        !error && <p class="muted">Loading details…</p>
      ) : (
        <>
          <div class="details-grid">
            <Section title="Drivers">
              <table class="kv">
                <tbody>
                  {details.drivers.map((d) => (
                    <tr>
                      <th>{d.component}</th>
                      <td>
                        {d.name} <span class="muted">{d.version}</span>
                      </td>
                    </tr>
                  ))}
                  <tr>
                    <th>Identity</th>
                    <td>
                      {device.pci_bus_id ? `PCI ${device.pci_bus_id} · ` : ""}vendor {hex(device.vendor.pci_id)}
                      {device.pci_device_id != null ? ` · device ${hex(device.pci_device_id)}` : ""}
                      {device.uuid ? ` · ${device.uuid}` : ""}
                    </td>
                  </tr>
                </tbody>
              </table>
            </Section>
            <Section title="Capabilities">
              <table class="kv">
                <tbody>
                  <tr>
                    <th>Compute</th>
                    <td>{details.capabilities.compute_backend ?? "none"}</td>
                  </tr>
                  {device.adapters.map((a) => (
                    <tr>
                      <th>{a.backend} adapter</th>
                      <td>
                        <span class={a.computes ? "yes" : "no"}>{a.computes ? "computes" : "not for compute:"}</span>{" "}
                        <span class="muted">{a.compute_note ?? `${a.driver} ${a.driver_info}`.trim()}</span>
                      </td>
                    </tr>
                  ))}
                  {details.capabilities.precisions.map((p) => (
                    <tr>
                      <th>{p.dtype}</th>
                      <td>
                        <span class={p.supported ? "yes" : "no"}>{p.supported ? "yes" : "no"}</span> <span class="muted">{p.note}</span>
                      </td>
                    </tr>
                  ))}
                  {details.capabilities.features && (
                    <tr>
                      <th>Features</th>
                      <td>
                        {(["shader_f16", "subgroups", "shader_int64", "timestamp_query", "cooperative_matrix"] as const).map((f) => (
                          <span class={`chip ${details.capabilities.features![f] ? "chip-on" : "chip-off"}`}>{f.replace(/_/g, "-")}</span>
                        ))}
                      </td>
                    </tr>
                  )}
                  {details.capabilities.limits && (
                    <>
                      <tr>
                        <th>Largest buffer</th>
                        <td>
                          {bytes(details.capabilities.limits.max_buffer_size)} · storage binding {bytes(details.capabilities.limits.max_storage_buffer_binding_size)}
                        </td>
                      </tr>
                      <tr>
                        <th>Workgroups</th>
                        <td>
                          {details.capabilities.limits.max_compute_invocations_per_workgroup} invocations ·{" "}
                          {bytes(details.capabilities.limits.max_compute_workgroup_storage_size)} shared · subgroups{" "}
                          {details.capabilities.limits.subgroup_min_size}–{details.capabilities.limits.subgroup_max_size}
                        </td>
                      </tr>
                    </>
                  )}
                </tbody>
              </table>
            </Section>
            <Section title="Clocks & link">
              <table class="kv">
                <tbody>
                  <tr>
                    <th>Core</th>
                    <td>
                      {fixed(status?.clock_graphics_mhz?.value, 0, "MHz")}
                      {status?.clock_graphics_max_mhz ? ` of ${fixed(status.clock_graphics_max_mhz.value, 0, "MHz")}` : ""}
                    </td>
                  </tr>
                  <tr>
                    <th>Memory</th>
                    <td>
                      {fixed(status?.clock_memory_mhz?.value, 0, "MHz")}
                      {status?.clock_memory_max_mhz ? ` of ${fixed(status.clock_memory_max_mhz.value, 0, "MHz")}` : ""}
                    </td>
                  </tr>
                  <tr>
                    <th>PCIe</th>
                    <td>
                      {status?.pcie_link
                        ? `gen ${status.pcie_link.value.generation ?? "?"} ×${status.pcie_link.value.width ?? "?"} (max gen ${status.pcie_link.value.max_generation ?? "?"} ×${status.pcie_link.value.max_width ?? "?"})`
                        : "—"}
                      {status?.pcie_rx_bytes_per_s ? ` · rx ${rate(status.pcie_rx_bytes_per_s.value)} tx ${rate(status.pcie_tx_bytes_per_s?.value)}` : ""}
                    </td>
                  </tr>
                  <tr>
                    <th>Fan</th>
                    <td>
                      {status?.fan_percent ? fixed(status.fan_percent.value, 0, "%") : "—"}
                      {status?.fan_rpm ? ` · ${fixed(status.fan_rpm.value, 0, "rpm")}` : ""}
                    </td>
                  </tr>
                  {status?.throttle_reasons && (
                    <tr>
                      <th>Clock limits</th>
                      <td>{status.throttle_reasons.value.length ? status.throttle_reasons.value.join(", ").replace(/_/g, " ") : "none"}</td>
                    </tr>
                  )}
                  {status?.cpu && (
                    <tr>
                      <th>Cores</th>
                      <td>
                        {status.cpu.logical_cores} logical{status.cpu.physical_cores ? `, ${status.cpu.physical_cores} physical` : ""} · swap{" "}
                        {bytes(status.cpu.swap_used_bytes)} of {bytes(status.cpu.swap_total_bytes)}
                        {status.cpu.load_average ? ` · load ${status.cpu.load_average.map((l) => l.toFixed(2)).join(" ")}` : ""}
                      </td>
                    </tr>
                  )}
                </tbody>
              </table>
            </Section>
            <PowerSection details={details} />
            <Section title="Recommended settings">
              {recommendation ? (
                <table class="kv">
                  <tbody>
                    <tr>
                      <th>Precision</th>
                      <td>
                        {recommendation.precision} <span class="muted">{recommendation.precision_reason}</span>
                      </td>
                    </tr>
                    <tr>
                      <th>Memory budget</th>
                      <td>
                        {bytes(recommendation.memory_budget_bytes)} <span class="muted">{recommendation.budget_reason}</span>
                      </td>
                    </tr>
                    <tr>
                      <th>Upscale tile</th>
                      <td>
                        {recommendation.tile_size} px <span class="muted">{recommendation.tile_reason}</span>
                      </td>
                    </tr>
                  </tbody>
                </table>
              ) : (
                <p class="muted">—</p>
              )}
            </Section>
            <Section title="Telemetry sources">
              <ul class="sources">
                {device.sources.map((s) => (
                  <li>
                    <span class={s.available ? "yes" : "no"}>{s.available ? "●" : "○"}</span> <b>{s.source}</b> <span class="muted">{s.detail}</span>
                  </li>
                ))}
                {status?.unavailable.map((u) => (
                  <li>
                    <span class="no">○</span> <b>{u.source}</b> <span class="muted">{u.reason}</span>
                  </li>
                ))}
              </ul>
            </Section>
          </div>
          <ProcessTable device={device} status={status} />
          <BenchmarkSection device={device} details={details} onDone={load} />
        </>
      )}
    </div>
  );
}

function Section({ title, children }: { title: string; children: preact.ComponentChildren }) {
  return (
    <section class="details-section">
      <h3>{title}</h3>
      {children}
    </section>
  );
}

function PowerSection({ details }: { details: DeviceDetails }) {
  const power = details.power;
  return (
    <Section title="Power">
      {power ? (
        <table class="kv">
          <tbody>
            <tr>
              <th>Limit</th>
              <td>
                {fixed(power.limits.current_watts, 0, "W")}
                {power.limits.enforced_watts != null ? ` (enforced ${fixed(power.limits.enforced_watts, 0, "W")})` : ""}
              </td>
            </tr>
            <tr>
              <th>Range</th>
              <td>
                {fixed(power.limits.min_watts, 0, "W")} to {fixed(power.limits.max_watts, 0, "W")}
                {power.limits.default_watts != null ? ` · default ${fixed(power.limits.default_watts, 0, "W")}` : ""}
              </td>
            </tr>
            <tr>
              <th>Change</th>
              <td class="muted">{power.can_set_reason}</td>
            </tr>
          </tbody>
        </table>
      ) : (
        <p class="muted">{details.power_unavailable}</p>
      )}
    </Section>
  );
}

function ProcessTable({ device, status }: { device: Device; status?: DeviceStatus }) {
  const processes = status?.processes?.value ?? [];
  const total = status?.memory_total_bytes?.value;
  if (device.kind === "cpu" || device.kind === "software_gpu") return null;
  return (
    <section class="details-section">
      <h3>Processes using this device</h3>
      {!status?.processes ? (
        <p class="muted">This driver does not report per-process use.</p>
      ) : processes.length === 0 ? (
        <p class="muted">No process holds memory on this device.</p>
      ) : (
        <table class="table">
          <thead>
            <tr>
              <th>Process</th>
              <th class="num">PID</th>
              <th class="num">Memory</th>
              <th class="num">Share</th>
              <th class="num">Engine</th>
              <th>Kind</th>
            </tr>
          </thead>
          <tbody>
            {processes.map((p) => (
              <tr class={p.is_kiln ? "row-kiln" : ""}>
                <td>
                  {p.name || "?"}
                  {p.is_kiln ? " (Kiln)" : ""}
                </td>
                <td class="num">{p.pid}</td>
                <td class="num">{bytes(p.memory_bytes)}</td>
                <td class="num">{p.memory_bytes != null && total ? `${((100 * p.memory_bytes) / total).toFixed(1)}%` : "—"}</td>
                <td class="num">{fixed(p.engine_percent, 0, "%")}</td>
                <td>{p.kind}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function BenchmarkSection({ device, details, onDone }: { device: Device; details: DeviceDetails; onDone: () => void }) {
  const [running, setRunning] = useState(false);
  const [error, setError] = useState<KilnError | null>(null);
  const [reset, setReset] = useState<ResetResult | null>(null);
  const result: BenchmarkResult | undefined = details.last_benchmark;
  const peaks = details.published_peaks;

  useEvents(
    useCallback(
      (event: KilnEvent) => {
        if (event.type === "benchmark_started" && event.device_id === device.id) setRunning(true);
        if (event.type === "benchmark_finished" && event.result.device_id === device.id) {
          setRunning(false);
          onDone();
        }
        if (event.type === "benchmark_failed" && event.device_id === device.id) setRunning(false);
      },
      [device.id, onDone],
    ),
  );

  const run = async () => {
    setRunning(true);
    setError(null);
    try {
      await call("devices.benchmark", { device_id: device.id });
      onDone();
    } catch (e) {
      setError(KilnError.from(e));
    } finally {
      setRunning(false);
    }
  };
  const release = async () => {
    setError(null);
    try {
      setReset(await call("devices.reset", { device_id: device.id }));
    } catch (e) {
      setError(KilnError.from(e));
    }
  };

  return (
    <section class="details-section benchmark">
      <h3>Benchmark</h3>
      <div class="row">
        <button class="button button-primary" onClick={run} disabled={running || !device.compute_backend}>
          {running ? "Measuring…" : "Run benchmark"}
        </button>
        <button class="button" onClick={release} title="Release the memory Kiln's compute pools hold on this device">
          Release Kiln's memory
        </button>
        {reset && (
          <span class="muted small">
            {reset.had_pools ? `Released ${bytes(reset.released_bytes)}; ${bytes(reset.after?.bytes_reserved ?? 0)} still reserved.` : "Kiln holds no memory here."}
          </span>
        )}
      </div>
      {error && <ErrorNote error={error} />}
      {result ? (
        <table class="table bench-table">
          <thead>
            <tr>
              <th>Measure</th>
              <th class="num">Kiln ({result.backend})</th>
              <th class="num">Published peak</th>
              <th class="num">Share</th>
            </tr>
          </thead>
          <tbody>
            {result.matmul.map((m) => {
              const peak = peaks ? (m.dtype === "f16" ? peaks.fp16_tflops : peaks.fp32_tflops) : undefined;
              return (
                <tr>
                  <td>
                    matmul {m.dtype} {m.size}³
                  </td>
                  <td class="num">{fixed(m.tflops, m.tflops < 1 ? 3 : 1, "TFLOP/s")}</td>
                  <td class="num">{fixed(peak, 1, "TFLOP/s")}</td>
                  <td class="num">{peak ? `${((100 * m.tflops) / peak).toFixed(0)}%` : "—"}</td>
                </tr>
              );
            })}
            {result.bandwidth && (
              <tr>
                <td>memory bandwidth</td>
                <td class="num">{fixed(result.bandwidth.gb_per_s, 1, "GB/s")}</td>
                <td class="num">{fixed(peaks?.memory_gb_per_s, 0, "GB/s")}</td>
                <td class="num">{peaks ? `${((100 * result.bandwidth.gb_per_s) / peaks.memory_gb_per_s).toFixed(0)}%` : "—"}</td>
              </tr>
            )}
          </tbody>
        </table>
      ) : (
        <p class="muted">Not measured yet. The benchmark times square matrix products and a memory stream through burn on this device.</p>
      )}
      {result && (
        <p class="muted small">
          {[
            ...result.skipped,
            peaks ? `Peaks: ${peaks.card}, ${peaks.source}` : "No published peaks known for this device",
            `took ${result.wall_seconds.toFixed(1)} s`,
          ].join(" · ")}
        </p>
      )}
    </section>
  );
}
