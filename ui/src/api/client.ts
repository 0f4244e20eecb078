// The one way the UI talks to the engine. Inside the desktop app it uses Tauri IPC (the `call`
// command and `kiln://event` events); in a browser it uses `kiln serve`'s HTTP API (GET for
// queries, POST for changes, the per-launch token in a header) and its event stream.
// Every operation is typed by the generated `Operations` table.

import type { ApiError, KilnEvent, Operations } from "../generated/kiln";
import { OPERATION_KINDS } from "../generated/kiln";

export type OpName = keyof Operations;
export type Input<K extends OpName> = Operations[K]["input"];
export type Output<K extends OpName> = Operations[K]["output"];

/** How the UI is connected, for the status strip. */
export type Connection =
  | { transport: "ipc"; state: "connected" }
  | { transport: "http"; state: "connecting" | "connected" | "reconnecting" | "no-token" };

/** An engine error as a thrown value, keeping `{code, message, details}`. */
export class KilnError extends Error {
  readonly code: string;
  readonly details: unknown;
  constructor(error: ApiError) {
    super(error.message);
    this.code = error.code;
    this.details = error.details;
  }
  static from(value: unknown): KilnError {
    if (value instanceof KilnError) return value;
    if (value && typeof value === "object" && "code" in value && "message" in value) {
      return new KilnError(value as ApiError);
    }
    return new KilnError({ code: "internal", message: String(value) });
  }
}

interface Transport {
  call(op: string, input: unknown): Promise<unknown>;
  /** `onResync` runs when events were missed and state must be fetched again. */
  subscribe(onEvent: (event: KilnEvent) => void, onState: (c: Connection) => void, onResync: () => void): void;
}

const TOKEN_KEY = "kiln.token";

/** Takes `#token=…` out of the address bar (so it is not left on screen) into session storage. */
function takeToken(): string | null {
  const match = /(?:^#|&)token=([0-9a-f]+)/.exec(location.hash);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, match[1]);
    history.replaceState(null, "", location.pathname + location.search + "#/devices");
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

class HttpTransport implements Transport {
  constructor(private readonly token: string | null) {}

  async call(op: string, input: unknown): Promise<unknown> {
    if (!this.token) {
      throw new KilnError({ code: "unauthorized", message: "Open the address `kiln serve` printed: it carries the access token." });
    }
    const kind = (OPERATION_KINDS as Record<string, string>)[op];
    const headers: Record<string, string> = { Authorization: `Bearer ${this.token}` };
    let response: Response;
    try {
      if (kind === "mutation") {
        headers["Content-Type"] = "application/json";
        response = await fetch(`api/${op}`, { method: "POST", headers, body: JSON.stringify(input ?? null) });
      } else {
        const query = input == null ? "" : `?input=${encodeURIComponent(JSON.stringify(input))}`;
        response = await fetch(`api/${op}${query}`, { headers });
      }
    } catch (error) {
      throw new KilnError({ code: "internal", message: `Kiln is not answering (${String(error)}). Is \`kiln serve\` still running?` });
    }
    const body = await response.json().catch(() => null);
    if (!response.ok) throw KilnError.from(body ?? { code: "internal", message: `HTTP ${response.status}` });
    return body;
  }

  subscribe(onEvent: (event: KilnEvent) => void, onState: (c: Connection) => void, onResync: () => void): void {
    if (!this.token) {
      onState({ transport: "http", state: "no-token" });
      return;
    }
    onState({ transport: "http", state: "connecting" });
    const source = new EventSource(`api/events?token=${this.token}`);
    let lost = false;
    source.addEventListener("open", () => {
      onState({ transport: "http", state: "connected" });
      // Back after an interruption: what happened meanwhile is only in a fresh fetch.
      if (lost) onResync();
      lost = false;
    });
    source.addEventListener("error", () => {
      lost = true;
      onState({ transport: "http", state: "reconnecting" });
    });
    source.addEventListener("kiln", (message) => onEvent(JSON.parse((message as MessageEvent).data) as KilnEvent));
    // This reader fell behind and events were dropped.
    source.addEventListener("lagged", () => onResync());
  }
}

class IpcTransport implements Transport {
  async call(op: string, input: unknown): Promise<unknown> {
    const { invoke } = await import("@tauri-apps/api/core");
    try {
      return await invoke("call", { op, input: input ?? null });
    } catch (error) {
      throw KilnError.from(error);
    }
  }

  subscribe(onEvent: (event: KilnEvent) => void, onState: (c: Connection) => void): void {
    onState({ transport: "ipc", state: "connected" });
    void import("@tauri-apps/api/event").then(({ listen }) => listen<KilnEvent>("kiln://event", (e) => onEvent(e.payload)));
  }
}

/** Whether the UI runs inside the desktop app (else a browser on `kiln serve`). */
export const inTauri = typeof window !== "undefined" && "__TAURI_INTERNALS__" in window;
const transport: Transport = inTauri ? new IpcTransport() : new HttpTransport(takeToken());

/** Runs an engine operation. Throws {@link KilnError}. */
export async function call<K extends OpName>(op: K, input: Input<K>): Promise<Output<K>> {
  return (await transport.call(op, input)) as Output<K>;
}

/** Starts receiving engine events. Call once. */
export function subscribe(onEvent: (event: KilnEvent) => void, onState: (c: Connection) => void, onResync: () => void): void {
  transport.subscribe(onEvent, onState, onResync);
}
