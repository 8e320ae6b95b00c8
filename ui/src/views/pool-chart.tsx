/**
 * A pool's GPUs held over time, stacked by project (uPlot). uPlot has no
 * stacking of its own: each series is drawn as the running sum up to it,
 * filled, the top one first, so each band shows one project; the legend and
 * the table read the project's own values.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { PoolHistory } from '../types.js';

const COLOURS = ['#4e79a7', '#f28e2b', '#59a14f', '#e15759', '#76b7b2', '#edc948', '#b07aa1', '#9c755f'];

export function PoolChart({ history }: { history: PoolHistory }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!box.current) return;
    const x = history.times.map((t) => Date.parse(t) / 1000);
    const sums: number[][] = [];
    for (const [i, s] of history.series.entries()) sums.push(s.gpus.map((g, j) => g + (i > 0 ? sums[i - 1]![j]! : 0)));
    const order = history.series.map((_, i) => i).reverse();
    const plot = new uPlot(
      {
        width: Math.max(320, Math.min(box.current.clientWidth || 640, 900)),
        height: 220,
        scales: { y: { range: [0, Math.max(1, history.maxGpus)] } },
        axes: [{}, { label: 'GPUs' }],
        series: [
          {},
          ...order.map((i) => ({
            label: history.series[i]!.project,
            stroke: COLOURS[i % COLOURS.length],
            // Opaque: each band is drawn over the one above it, whose colour must not show through.
            fill: COLOURS[i % COLOURS.length],
            value: (_u: uPlot, _v: number | null, _s: number, idx: number | null) =>
              idx === null ? '—' : String(history.series[i]!.gpus[idx]),
          })),
        ],
      },
      [x, ...order.map((i) => sums[i]!)] as uPlot.AlignedData,
      box.current,
    );
    return () => plot.destroy();
  }, [history]);
  const total = history.series.map((s) => `${s.project} ${peak(s.gpus)}`).join(', ');
  return (
    <figure class="chart">
      <div ref={box} role="img" aria-label={`GPUs in use in pool ${history.pool}, stacked by project`} />
      <figcaption>
        GPUs in use over the last {Math.round((Date.parse(history.to) - Date.parse(history.from)) / 3_600_000)} h,
        stacked by project{history.series.length ? ` (peaks: ${total})` : ': none used'}
        {history.truncated ? '; older jobs were not all read' : ''}.
      </figcaption>
    </figure>
  );
}

const peak = (values: number[]) => Math.max(0, ...values);
