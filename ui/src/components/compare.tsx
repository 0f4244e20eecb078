// The before/after comparison of an upscale: one image with a draggable split line (the input,
// scaled to the result's size with hard pixels, on the left; the result on the right), or the
// two side by side. Mouse-wheel zoom about the cursor and drag-to-pan move both in step; "1:1"
// shows one result pixel per screen pixel, "Fit" the whole image.

import { useEffect, useRef, useState } from "preact/hooks";
import type { Job } from "../generated/kiln";
import { ErrorNote } from "./common";
import { duration, pixels } from "./format";
import { useFullImage } from "./job-image";
import { modelName, upscaleOutcome } from "./jobs";

/** Screen (CSS) pixels per result pixel, and where the image's top-left corner sits in a pane. */
interface View {
  scale: number;
  x: number;
  y: number;
  /** Set by "Fit": kept fitted when the pane changes size. */
  fitted: boolean;
}

const clamp = (v: number, lo: number, hi: number) => Math.min(hi, Math.max(lo, v));
/** Zoom limits in device pixels per result pixel. */
const MIN_ZOOM = 0.01;
const MAX_ZOOM = 64;

export function CompareView({ job, onClose }: { job: Job; onClose: () => void }) {
  const outcome = upscaleOutcome(job);
  const [before, beforeError] = useFullImage(job.id, "input", job.finished_ms);
  const [after, afterError] = useFullImage(job.id, "output", job.finished_ms);
  const width = after?.width ?? outcome?.output_width ?? 0;
  const height = after?.height ?? outcome?.output_height ?? 0;
  const ready = !!(before && after && width && height);
  const [sideBySide, setSideBySide] = useState(false);
  const [split, setSplit] = useState(0.5);
  const [view, setView] = useState<View | null>(null);
  const pane = useRef<HTMLDivElement>(null);
  const drag = useRef<{ kind: "pan" | "split"; x: number; y: number } | null>(null);
  const viewNow = useRef(view);
  viewNow.current = view;

  const fit = () => {
    const rect = pane.current?.getBoundingClientRect();
    if (!rect || !width || !height) return;
    const scale = Math.min(rect.width / width, rect.height / height);
    setView({ scale, x: (rect.width - width * scale) / 2, y: (rect.height - height * scale) / 2, fitted: true });
  };
  /** Zooms to `scale`, keeping the image point under (cx, cy) in place. */
  const zoomAbout = (scale: number, cx: number, cy: number) =>
    setView((v) => {
      if (!v) return v;
      const s = clamp(scale, MIN_ZOOM / devicePixelRatio, MAX_ZOOM / devicePixelRatio);
      return { scale: s, x: cx - ((cx - v.x) * s) / v.scale, y: cy - ((cy - v.y) * s) / v.scale, fitted: false };
    });
  const oneToOne = (cx?: number, cy?: number) => {
    const rect = pane.current?.getBoundingClientRect();
    if (rect) zoomAbout(1 / devicePixelRatio, cx ?? rect.width / 2, cy ?? rect.height / 2);
  };

  // Fit once both images are here, and again when the pane changes size while fitted.
  useEffect(() => {
    const el = pane.current;
    if (!ready || !el) return;
    const observer = new ResizeObserver(() => {
      if (!viewNow.current || viewNow.current.fitted) fit();
    });
    observer.observe(el);
    return () => observer.disconnect();
  }, [ready, sideBySide, width, height]);

  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.target instanceof HTMLInputElement || e.target instanceof HTMLSelectElement || e.ctrlKey || e.metaKey) return;
      if (e.key === "Escape") onClose();
      else if (e.key === "f") fit();
      else if (e.key === "1") oneToOne();
    };
    addEventListener("keydown", onKey);
    return () => removeEventListener("keydown", onKey);
  });

  const handlers = {
    onWheel: (e: WheelEvent) => {
      if (!view) return;
      e.preventDefault();
      const rect = (e.currentTarget as HTMLElement).getBoundingClientRect();
      const delta = e.deltaY * (e.deltaMode === 1 ? 16 : e.deltaMode === 2 ? rect.height : 1);
      zoomAbout(view.scale * Math.exp(-delta * 0.0015), e.clientX - rect.left, e.clientY - rect.top);
    },
    onPointerDown: (e: PointerEvent) => {
      if (e.button !== 0) return;
      (e.currentTarget as HTMLElement).setPointerCapture(e.pointerId);
      drag.current = { kind: "pan", x: e.clientX, y: e.clientY };
    },
    onPointerMove: (e: PointerEvent) => {
      const d = drag.current;
      if (!d) return;
      if (d.kind === "split") {
        const rect = (e.currentTarget as HTMLElement).getBoundingClientRect();
        setSplit(clamp((e.clientX - rect.left) / rect.width, 0, 1));
        return;
      }
      const dx = e.clientX - d.x;
      const dy = e.clientY - d.y;
      drag.current = { ...d, x: e.clientX, y: e.clientY };
      setView((v) => v && { ...v, x: v.x + dx, y: v.y + dy, fitted: false });
    },
    onPointerUp: () => void (drag.current = null),
    onPointerCancel: () => void (drag.current = null),
    onDblClick: (e: MouseEvent) => {
      const rect = (e.currentTarget as HTMLElement).getBoundingClientRect();
      if (view?.fitted) oneToOne(e.clientX - rect.left, e.clientY - rect.top);
      else fit();
    },
  };

  const transform = view ? `translate(${view.x}px, ${view.y}px) scale(${view.scale})` : "scale(0)";
  const imageStyle = { width: `${width}px`, height: `${height}px`, transform };
  // Past 1:1 the result shows its own pixels too; below it is smoothed like any viewer.
  const afterClass = `compare-img compare-after${view && view.scale * devicePixelRatio > 1.5 ? " pixelated" : ""}`;
  const beforeImage = before && <img class="compare-img compare-before pixelated" src={before.url} style={imageStyle} alt={`Before: ${job.name}`} draggable={false} />;
  const afterImage = after && <img class={afterClass} src={after.url} style={imageStyle} alt={`After: ${job.name}`} draggable={false} />;
  const zoom = view ? `${Math.round(view.scale * devicePixelRatio * 100)}%` : "—";

  return (
    <section class="compare card" aria-label={`Comparison of ${job.name}`}>
      <header class="compare-bar row">
        <strong class="compare-title">{job.name}</strong>
        <span class="muted small">
          {pixels(before?.width ?? outcome?.input_width, before?.height ?? outcome?.input_height)} → {pixels(width, height)}
          {outcome ? ` · ${modelName(outcome.model)} · ${duration(outcome.seconds)}` : ""}
        </span>
        <span class="spacer" />
        <span class="compare-zoom" aria-label="Zoom" title="Result pixels per screen pixel">
          {zoom}
        </span>
        <button class="button small" onClick={fit} disabled={!ready} title="Show the whole image (F)">
          Fit
        </button>
        <button class="button small" onClick={() => oneToOne()} disabled={!ready} title="One result pixel per screen pixel (1)">
          1:1
        </button>
        <button class={`button small${sideBySide ? " button-on" : ""}`} aria-pressed={sideBySide} onClick={() => setSideBySide(!sideBySide)}>
          Side by side
        </button>
        <button class="button button-quiet small" onClick={onClose} aria-label="Close the comparison" title="Close (Esc)">
          ✕
        </button>
      </header>
      {beforeError && <ErrorNote error={beforeError} />}
      {afterError && <ErrorNote error={afterError} />}
      <div class={`compare-stage${sideBySide ? " side-by-side" : ""}`}>
        {!ready && !beforeError && !afterError && <p class="compare-loading muted">Loading the full images…</p>}
        {sideBySide ? (
          <>
            <div class="compare-pane" ref={pane} {...handlers}>
              {beforeImage}
              <span class="compare-tag tag-left">Before</span>
            </div>
            <div class="compare-pane" {...handlers}>
              {afterImage}
              <span class="compare-tag tag-right">After</span>
            </div>
          </>
        ) : (
          <div class="compare-pane" ref={pane} {...handlers}>
            {afterImage}
            <div class="compare-clip" style={{ clipPath: `inset(0 ${100 - split * 100}% 0 0)` }}>
              {beforeImage}
            </div>
            <div
              class="compare-split"
              style={{ left: `${split * 100}%` }}
              role="slider"
              tabIndex={0}
              aria-label="Split between before and after"
              aria-valuemin={0}
              aria-valuemax={100}
              aria-valuenow={Math.round(split * 100)}
              onPointerDown={(e) => {
                if (e.button !== 0) return;
                e.stopPropagation();
                pane.current?.setPointerCapture(e.pointerId);
                drag.current = { kind: "split", x: e.clientX, y: e.clientY };
              }}
              onDblClick={(e) => e.stopPropagation()}
              onKeyDown={(e) => {
                const step = e.shiftKey ? 0.1 : 0.02;
                if (e.key === "ArrowLeft") setSplit((s) => clamp(s - step, 0, 1));
                else if (e.key === "ArrowRight") setSplit((s) => clamp(s + step, 0, 1));
                else return;
                e.preventDefault();
              }}
            >
              <span class="compare-knob" aria-hidden="true">
                ⟷
              </span>
            </div>
            <span class="compare-tag tag-left">Before</span>
            <span class="compare-tag tag-right">After</span>
          </div>
        )}
      </div>
      <p class="small muted compare-help">Drag to pan, scroll to zoom about the pointer, double-click for 1:1 or fit, drag the line to compare.</p>
    </section>
  );
}
