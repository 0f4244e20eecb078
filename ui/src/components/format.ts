// Number formatting with units, fixed decimals so figures do not jump as they update.

export function bytes(n: number | undefined | null): string {
  if (n == null) return "—";
  const gib = n / 2 ** 30;
  if (gib >= 100) return `${gib.toFixed(0)} GiB`;
  if (gib >= 1) return `${gib.toFixed(1)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(0)} MiB`;
  return `${(n / 2 ** 10).toFixed(0)} KiB`;
}

export function rate(n: number | undefined | null): string {
  if (n == null) return "—";
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)} GB/s`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)} MB/s`;
  return `${(n / 1e3).toFixed(0)} kB/s`;
}

export function fixed(n: number | undefined | null, digits = 0, unit = ""): string {
  if (n == null || !Number.isFinite(n)) return "—";
  return `${n.toFixed(digits)}${unit ? ` ${unit}` : ""}`;
}

export function ago(ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return new Date(ms).toLocaleString();
}

export function hex(n: number | undefined, width = 4): string {
  return n == null ? "—" : `0x${n.toString(16).padStart(width, "0")}`;
}

/** Seconds as `4.2 s`, `3 min 05 s` or `2 h 07 min`. */
export function duration(s: number | undefined | null): string {
  if (s == null || !Number.isFinite(s)) return "—";
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 60) return `${s.toFixed(0)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(Math.floor(s % 60)).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}

/** An image size as `1920 × 1080`. */
export function pixels(width: number | undefined | null, height: number | undefined | null): string {
  return width == null || height == null ? "—" : `${width} × ${height}`;
}

/** The last part of a path, on any platform. */
export function fileName(path: string): string {
  return path.split(/[\\/]/).filter(Boolean).pop() ?? path;
}

/** A time of day (today) or a date and time. */
export function when(ms: number | undefined | null): string {
  if (ms == null) return "—";
  const date = new Date(ms);
  return date.toDateString() === new Date().toDateString() ? date.toLocaleTimeString() : date.toLocaleString();
}
