// Small pieces every page uses: the health badge and an error note with copyable details.

import type { DeviceHealth } from "../generated/kiln";
import type { KilnError } from "../api/client";

export function HealthBadge({ health }: { health?: DeviceHealth }) {
  if (!health) return <span class="badge badge-unknown">no reading</span>;
  const label = { ok: "Healthy", warning: "Warning", critical: "Critical" }[health.level];
  const title = health.reasons.length ? health.reasons.map((r) => r.message).join("\n") : "Nothing out of range";
  return (
    <span class={`badge badge-${health.level}`} title={title} role="status">
      {label}
    </span>
  );
}

export function ErrorNote({ error }: { error: KilnError }) {
  const text = JSON.stringify({ code: error.code, message: error.message, details: error.details ?? null }, null, 2);
  return (
    <div class="error-note" role="alert">
      <span class="error-code">{error.code}</span>
      <span class="error-message">{error.message}</span>
      <button class="button button-quiet small" onClick={() => void navigator.clipboard?.writeText(text)} title="Copy the error's details">
        Copy details
      </button>
    </div>
  );
}
