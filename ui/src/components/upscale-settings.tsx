// The Upscale page's side panel: model (runnable upscalers with architecture and scale), output
// size, format and quality, alpha, TTA, tile, precision, device, output folder, session and
// whether dropped folders include their sub-folders. Remembered in this browser's local storage.

import type { JSX } from "preact";
import { useId } from "preact/hooks";
import type { AlphaMode, Library, OutputFormat, OutputSize, PrecisionChoice, Step, SubmitJobs } from "../generated/kiln";
import { useQueue } from "../api/queue";
import { useStore } from "../api/store";

export interface Choices {
  /** A model's path; empty: the bundled default. */
  model: string;
  sizeBy: OutputSize["by"];
  scale: number;
  width: number;
  format: OutputFormat;
  quality: number;
  alpha: AlphaMode;
  tta: boolean;
  /** Tile side in input pixels; empty: chosen from the memory budget. */
  tile: string;
  precision: PrecisionChoice;
  /** Empty: the output folder in Settings. */
  outputDir: string;
  /** Empty: any device Kiln picks. */
  deviceId: string;
  recursive: boolean;
  /** A session's id; empty: none. */
  sessionId: string;
}

const KEY = "kiln.upscale";
const DEFAULTS: Choices = {
  model: "",
  sizeBy: "model",
  scale: 2,
  width: 1920,
  format: "png",
  quality: 92,
  alpha: "model",
  tta: false,
  tile: "",
  precision: "auto",
  outputDir: "",
  deviceId: "",
  recursive: true,
  sessionId: "",
};

export function loadChoices(): Choices {
  try {
    return { ...DEFAULTS, ...(JSON.parse(localStorage.getItem(KEY) ?? "{}") as Partial<Choices>) };
  } catch {
    return DEFAULTS;
  }
}

export function saveChoices(choices: Choices): void {
  localStorage.setItem(KEY, JSON.stringify(choices));
}

/** What is wrong with the choices, before the engine is asked. */
export function problem(c: Choices): string | null {
  if (c.sizeBy === "scale" && !(c.scale >= 0.05 && c.scale <= 16)) return "The scale must lie between 0.05 and 16.";
  if (c.sizeBy === "width" && !(Number.isInteger(c.width) && c.width >= 1)) return "The width must be a whole number of pixels.";
  if (c.format !== "png" && !(c.quality >= 1 && c.quality <= 100)) return "The quality must lie between 1 and 100.";
  const tile = c.tile.trim();
  if (tile && !(/^\d+$/.test(tile) && Number(tile) >= 16 && Number(tile) <= 8192)) return "The tile must be empty (auto) or 16 to 8192 pixels.";
  return null;
}

/** The submission the choices make, less its inputs. */
export function submission(c: Choices): Omit<SubmitJobs, "inputs"> {
  const size: OutputSize = c.sizeBy === "scale" ? { by: "scale", scale: c.scale } : c.sizeBy === "width" ? { by: "width", width: c.width } : { by: "model" };
  const step: Step = {
    kind: "upscale",
    model: c.model || undefined,
    size,
    format: c.format,
    quality: c.quality,
    alpha: c.alpha,
    tta: c.tta,
    tile: c.tile.trim() ? Number(c.tile) : undefined,
    precision: c.precision,
  };
  return {
    steps: [step],
    recursive: c.recursive,
    priority: 0,
    output_dir: c.outputDir.trim() || undefined,
    device_id: c.deviceId || undefined,
    session_id: c.sessionId ? Number(c.sessionId) : undefined,
  };
}

function value(e: Event): string {
  return (e.target as HTMLInputElement).value;
}

/** A labelled control with an optional note under it. The label points at the control by id
 * (not wrapping it, so a select's chosen option is not read as part of its name). */
function Field({ label, note, kind = "", children }: { label: string; note?: string; kind?: string; children: (id: string) => JSX.Element }) {
  const id = useId();
  const caption = <label for={id}>{label}</label>;
  return (
    <div class={`field ${kind}`}>
      {kind === "field-check" ? (
        <span class="field-line">
          {children(id)}
          {caption}
        </span>
      ) : (
        <>
          {caption}
          {children(id)}
        </>
      )}
      {note && <span class="field-note">{note}</span>}
    </div>
  );
}

interface PanelProps {
  choices: Choices;
  onChange: (choices: Choices) => void;
  library: Library | null;
}

export function UpscaleSettingsPanel({ choices: c, onChange, library }: PanelProps) {
  const store = useStore();
  const sessions = (useQueue().list?.sessions ?? []).filter((s) => s.state !== "cancelled" || String(s.id) === c.sessionId);
  const set = (patch: Partial<Choices>) => onChange({ ...c, ...patch });
  const upscalers = (library?.models ?? []).filter((m) => m.runnable);
  const bundledFolders = new Set(library?.folders.filter((f) => f.kind === "bundled").map((f) => f.path));
  const bundled = upscalers.find((m) => bundledFolders.has(m.folder));
  const chosen = upscalers.find((m) => m.path === c.model) ?? (c.model ? undefined : bundled);
  const modelScale = chosen?.info?.scale;
  const devices = store.devices.filter((d) => d.compute_backend);
  const wrong = problem(c);
  const defaultFolder = store.settings?.processing?.output_dir || "Pictures/Kiln";

  const unitInput = (unit: string, input: JSX.Element) => (
    <span class="with-unit">
      {input}
      <span class="unit">{unit}</span>
    </span>
  );

  return (
    <aside class="upscale-settings" aria-label="Upscale settings">
      <h3>Settings</h3>
      <Field label="Model" note={chosen?.info ? `${chosen.info.label}${modelScale != null ? ` · ×${+modelScale.toFixed(2)}` : ""}` : library ? undefined : "Reading the model folders…"}>
        {(id) => (
          <select id={id} value={c.model} onChange={(e) => set({ model: value(e) })}>
            <option value="">Bundled{bundled ? `: ${bundled.name}` : ""}</option>
            {upscalers
              .filter((m) => m !== bundled)
              .map((m) => (
                <option value={m.path}>
                  {m.name} · {m.info?.label ?? "?"}
                </option>
              ))}
            {c.model && !chosen && <option value={c.model}>{c.model} (not in the library)</option>}
          </select>
        )}
      </Field>

      <Field label="Output size">
        {(id) => (
          <select id={id} value={c.sizeBy} onChange={(e) => set({ sizeBy: value(e) as Choices["sizeBy"] })}>
            <option value="model">Model's scale{modelScale != null ? ` (×${+modelScale.toFixed(2)})` : ""}</option>
            <option value="scale">Scale by…</option>
            <option value="width">Width of…</option>
          </select>
        )}
      </Field>
      {c.sizeBy === "scale" && (
        <Field label="Scale" kind="field-inline">
          {(id) =>
            unitInput("×", <input id={id} class="number" type="number" min="0.05" max="16" step="0.25" value={c.scale} onInput={(e) => set({ scale: Number(value(e)) })} />)
          }
        </Field>
      )}
      {c.sizeBy === "width" && (
        <Field label="Width" kind="field-inline">
          {(id) =>
            unitInput("px", <input id={id} class="number" type="number" min="1" step="1" value={c.width} onInput={(e) => set({ width: Number(value(e)) })} />)
          }
        </Field>
      )}

      <Field label="Format">
        {(id) => (
          <select id={id} value={c.format} onChange={(e) => set({ format: value(e) as OutputFormat })}>
            <option value="png">PNG (lossless, keeps 16-bit and alpha)</option>
            <option value="jpeg">JPEG (8-bit, no alpha)</option>
            <option value="webp">WebP (8-bit with alpha)</option>
          </select>
        )}
      </Field>
      {c.format !== "png" && (
        <Field label="Quality" kind="field-inline">
          {(id) =>
            unitInput(String(c.quality), <input id={id} type="range" min="1" max="100" value={c.quality} onInput={(e) => set({ quality: Number(value(e)) })} />)
          }
        </Field>
      )}

      <Field label="Alpha">
        {(id) => (
          <select id={id} value={c.alpha} onChange={(e) => set({ alpha: value(e) as AlphaMode })}>
            <option value="model">Through the model (sharp edges)</option>
            <option value="resize">Resized (smooth, cheaper)</option>
          </select>
        )}
      </Field>

      <Field label="TTA" kind="field-check" note="Averages 8 flips and rotations: a little cleaner, 8× the work.">
        {(id) => (
          <input id={id} type="checkbox" checked={c.tta} onChange={(e) => set({ tta: (e.target as HTMLInputElement).checked })} />
        )}
      </Field>

      <div class="field-pair">
        <Field label="Tile">
          {(id) => (
            <input id={id} class="number" inputMode="numeric" placeholder="auto" value={c.tile} onInput={(e) => set({ tile: value(e) })} />
          )}
        </Field>
        <Field label="Precision">
          {(id) => (
            <select id={id} value={c.precision} onChange={(e) => set({ precision: value(e) as PrecisionChoice })}>
              <option value="auto">Auto</option>
              <option value="f32">f32</option>
              <option value="f16">f16</option>
            </select>
          )}
        </Field>
      </div>

      <Field label="Device">
        {(id) => (
          <select id={id} value={c.deviceId} onChange={(e) => set({ deviceId: value(e) })}>
            <option value="">Any (Kiln picks)</option>
            {devices.map((d) => (
              <option value={d.id}>{d.name}</option>
            ))}
            {c.deviceId && !devices.some((d) => d.id === c.deviceId) && <option value={c.deviceId}>{c.deviceId} (not found)</option>}
          </select>
        )}
      </Field>

      <Field label="Output folder" note={`Empty: ${defaultFolder}, on the machine Kiln runs on.`}>
        {(id) => (
          <input id={id} class="text" placeholder={defaultFolder} value={c.outputDir} onInput={(e) => set({ outputDir: value(e) })} />
        )}
      </Field>

      {(sessions.length > 0 || c.sessionId) && (
        <Field label="Session" note="A session that has not started collects jobs without running them.">
          {(id) => (
            <select id={id} value={c.sessionId} onChange={(e) => set({ sessionId: value(e) })}>
              <option value="">None</option>
              {sessions.map((s) => (
                <option value={String(s.id)}>
                  {s.name} ({s.state})
                </option>
              ))}
              {c.sessionId && !sessions.some((s) => String(s.id) === c.sessionId) && <option value={c.sessionId}>session {c.sessionId} (gone)</option>}
            </select>
          )}
        </Field>
      )}

      <Field label="Include sub-folders" kind="field-check" note="Of dropped folders.">
        {(id) => (
          <input id={id} type="checkbox" checked={c.recursive} onChange={(e) => set({ recursive: (e.target as HTMLInputElement).checked })} />
        )}
      </Field>

      {wrong && (
        <p class="field-problem" role="alert">
          {wrong}
        </p>
      )}
    </aside>
  );
}
