// Settings: how often devices are sampled, how much history is kept, memory budgets, where
// results go and which folders files may come from, and the health thresholds. Budgets set per
// device live on the Memory page.

import { useEffect, useState } from "preact/hooks";
import type { HealthThresholds, Settings } from "../generated/kiln";
import { call, KilnError } from "../api/client";
import { useStore } from "../api/store";
import { ErrorNote } from "../components/common";

const THRESHOLDS: { key: keyof HealthThresholds; label: string; unit: string }[] = [
  { key: "gpu_temperature_warning_c", label: "GPU temperature, warning", unit: "°C" },
  { key: "gpu_temperature_critical_c", label: "GPU temperature, critical", unit: "°C" },
  { key: "hotspot_temperature_warning_c", label: "Hotspot temperature, warning", unit: "°C" },
  { key: "hotspot_temperature_critical_c", label: "Hotspot temperature, critical", unit: "°C" },
  { key: "cpu_temperature_warning_c", label: "CPU temperature, warning", unit: "°C" },
  { key: "cpu_temperature_critical_c", label: "CPU temperature, critical", unit: "°C" },
  { key: "memory_warning_percent", label: "Memory in use, warning", unit: "%" },
  { key: "memory_critical_percent", label: "Memory in use, critical", unit: "%" },
];

/** The colour theme is this browser's choice, kept in local storage. */
export function setTheme(theme: "dark" | "light"): void {
  document.documentElement.dataset.theme = theme;
  localStorage.setItem("kiln.theme", theme);
}

export function SettingsPage() {
  const store = useStore();
  const [draft, setDraft] = useState<Settings | null>(store.settings);
  const [error, setError] = useState<KilnError | null>(null);
  const [saved, setSaved] = useState(false);
  useEffect(() => {
    if (!draft && store.settings) setDraft(store.settings);
  }, [store.settings]);
  if (!draft) return <section class="page"><p class="muted">Loading settings…</p></section>;

  const number = (value: string) => Number(value);
  const save = async () => {
    setError(null);
    setSaved(false);
    try {
      // Folders and per-device budgets are changed on the Models and Memory pages: keep theirs.
      const current = store.settings;
      const next = current
        ? { ...draft, models: current.models, memory: { ...draft.memory, vram_budget_bytes: current.memory.vram_budget_bytes } }
        : draft;
      setDraft(await call("settings.update", next));
      setSaved(true);
    } catch (e) {
      setError(KilnError.from(e));
    }
  };

  return (
    <section class="page">
      <header class="page-head">
        <h1>Settings</h1>
      </header>
      <form
        class="settings"
        onSubmit={(e) => {
          e.preventDefault();
          void save();
        }}
      >
        <fieldset>
          <legend>Appearance</legend>
          <label>
            <span>Theme</span>
            <select
              value={document.documentElement.dataset.theme ?? "dark"}
              onChange={(e) => setTheme((e.target as HTMLSelectElement).value as "dark" | "light")}
            >
              <option value="dark">Dark</option>
              <option value="light">Light</option>
            </select>
            <span />
          </label>
        </fieldset>
        <fieldset>
          <legend>Telemetry</legend>
          <label>
            <span>Sample every</span>
            <input
              type="number"
              min={100}
              max={60000}
              step={100}
              value={draft.telemetry.interval_ms}
              onInput={(e) => setDraft({ ...draft, telemetry: { ...draft.telemetry, interval_ms: number((e.target as HTMLInputElement).value) } })}
            />
            <span class="unit">ms</span>
          </label>
          <label>
            <span>Keep history for</span>
            <input
              type="number"
              min={10}
              max={1440}
              value={draft.telemetry.history_minutes}
              onInput={(e) => setDraft({ ...draft, telemetry: { ...draft.telemetry, history_minutes: number((e.target as HTMLInputElement).value) } })}
            />
            <span class="unit">min</span>
          </label>
        </fieldset>
        <fieldset>
          <legend>Memory</legend>
          <label>
            <span>RAM cache</span>
            <input
              type="number"
              min={5}
              max={90}
              value={Math.round(draft.memory.ram_cache_fraction * 100)}
              onInput={(e) => setDraft({ ...draft, memory: { ...draft.memory, ram_cache_fraction: number((e.target as HTMLInputElement).value) / 100 } })}
            />
            <span class="unit">% of RAM</span>
          </label>
          <label>
            <span>Device budget</span>
            <input
              type="number"
              min={10}
              max={98}
              value={Math.round(draft.memory.vram_budget_fraction * 100)}
              onInput={(e) => setDraft({ ...draft, memory: { ...draft.memory, vram_budget_fraction: number((e.target as HTMLInputElement).value) / 100 } })}
            />
            <span class="unit">% of what others leave</span>
          </label>
        </fieldset>
        <fieldset>
          <legend>Files</legend>
          <label>
            <span>Results go to</span>
            <input
              type="text"
              placeholder="Pictures/Kiln"
              value={draft.processing.output_dir ?? ""}
              onInput={(e) => {
                const value = (e.target as HTMLInputElement).value.trim();
                setDraft({ ...draft, processing: { ...draft.processing, output_dir: value === "" ? undefined : value } });
              }}
            />
            <span />
          </label>
          <label>
            <span>Also allow folders</span>
            <textarea
              rows={3}
              placeholder="/mnt/photos (one per line)"
              value={draft.processing.allowed_roots.join("\n")}
              onInput={(e) => {
                const roots = (e.target as HTMLTextAreaElement).value.split("\n").map((r) => r.trim()).filter((r) => r !== "");
                setDraft({ ...draft, processing: { ...draft.processing, allowed_roots: roots } });
              }}
            />
            <span />
          </label>
          <p class="muted small">
            Results go to Pictures/Kiln unless set here or on the Upscale page. Files and folders the UI names must lie in
            your home folder, Kiln's data folder, the results folder or a folder listed here.
          </p>
        </fieldset>
        <fieldset>
          <legend>Health thresholds</legend>
          {THRESHOLDS.map((t) => (
            <label>
              <span>{t.label}</span>
              <input
                type="number"
                step="1"
                value={draft.health[t.key]}
                onInput={(e) => setDraft({ ...draft, health: { ...draft.health, [t.key]: number((e.target as HTMLInputElement).value) } })}
              />
              <span class="unit">{t.unit}</span>
            </label>
          ))}
        </fieldset>
        {error && <ErrorNote error={error} />}
        <div class="row">
          <button class="button button-primary" type="submit">
            Save
          </button>
          {saved && <span class="muted">Saved. New samples use these settings.</span>}
          {store.app && <span class="muted small">Stored in {store.app.data_dir}</span>}
        </div>
      </form>
    </section>
  );
}
