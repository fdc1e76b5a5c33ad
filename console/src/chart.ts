/** Line charts with uPlot; each chart's element keeps its instance (`element.chart`) for tests and tools. */
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import { h } from './dom.ts';

export type ChartElement = HTMLElement & { chart?: uPlot };

export function lineChart(
  title: string,
  series: {
    label: string;
    times: number[];
    values: (number | null)[][];
    names: string[];
    band?: boolean;
    bucketed?: boolean;
  },
): ChartElement {
  const box: ChartElement = h('figure', {
    class: 'chart',
    'data-metric': series.label,
    'data-points': series.times.length,
  });
  const width = Math.max(320, Math.min(1000, document.body.clientWidth - 48));
  const colours = ['#1f5fbf', '#b3261e', '#2e7d32', '#6a1b9a'];
  const options: uPlot.Options = {
    title,
    width,
    height: 240,
    series: [
      {},
      ...series.names.map((name, i) => ({ label: name, stroke: colours[i % colours.length], width: 1.5 })),
    ],
    axes: [{}, { size: 60 }],
    // Daily figures: max (1) over min (2); buckets: max (3) over min (2), around the average.
    ...(series.band ? { bands: [{ series: [1, 2] as [number, number], fill: 'rgba(31,95,191,0.12)' }] } : {}),
    ...(series.bucketed
      ? { bands: [{ series: [3, 2] as [number, number], fill: 'rgba(31,95,191,0.12)' }] }
      : {}),
  };
  box.chart = new uPlot(options, [series.times, ...series.values], box);
  box.append(h('figcaption', { class: 'visually-hidden' }, `${title}: ${series.times.length} points`));
  return box;
}
