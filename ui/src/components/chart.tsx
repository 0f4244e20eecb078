// A small live time-series chart (uPlot): the last minutes of one metric, hover to read a point.

import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";

export interface ChartProps {
  label: string;
  t: number[];
  values: (number | null)[];
  format: (v: number | null | undefined) => string;
  color: string;
  /** Fixed y range (percentages); auto when absent. */
  range?: [number, number];
  /** Seconds of history shown. */
  window: number;
}

export function Chart({ label, t, values, format, color, range, window }: ChartProps) {
  const host = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);

  useEffect(() => {
    const el = host.current!;
    const opts: uPlot.Options = {
      width: el.clientWidth || 260,
      height: 64,
      padding: [4, 4, 0, 0],
      cursor: { y: false, points: { size: 5 } },
      legend: { show: false },
      select: { show: false, left: 0, top: 0, width: 0, height: 0 },
      scales: {
        x: { time: true },
        y: range ? { range: () => range } : { range: (_u, min, max) => [Math.min(0, min ?? 0), Math.max(1, (max ?? 1) * 1.1)] },
      },
      axes: [{ show: false }, { show: false }],
      series: [
        {},
        { label, stroke: color, width: 1.5, fill: `${color}22`, points: { show: false }, spanGaps: false },
      ],
      hooks: {
        setCursor: [
          (u) => {
            const idx = u.cursor.idx;
            const readout = el.parentElement?.querySelector<HTMLElement>(".chart-readout");
            if (!readout) return;
            if (idx == null) {
              readout.textContent = "";
            } else {
              const when = new Date((u.data[0][idx] as number) * 1000).toLocaleTimeString();
              readout.textContent = `${format(u.data[1][idx] as number | null)} at ${when}`;
            }
          },
        ],
      },
    };
    plot.current = new uPlot(opts, [[], []], el);
    const resize = new ResizeObserver(() => plot.current?.setSize({ width: el.clientWidth, height: 64 }));
    resize.observe(el);
    return () => {
      resize.disconnect();
      plot.current?.destroy();
      plot.current = null;
    };
  }, [label, color]);

  useEffect(() => {
    const u = plot.current;
    if (!u) return;
    const now = t.length ? t[t.length - 1] : Date.now() / 1000;
    u.setData([t, values] as uPlot.AlignedData, false);
    u.setScale("x", { min: now - window, max: now });
  }, [t, values, t.length, t[t.length - 1], window]);

  return (
    <div class="chart">
      <div class="chart-head">
        <span class="chart-label">{label}</span>
        <span class="chart-readout" />
      </div>
      <div ref={host} class="chart-plot" />
    </div>
  );
}
