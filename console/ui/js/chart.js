// Charts: the audits-by-severity chart (uPlot, vendored, loaded only where a chart is
// shown) and the per-host sparklines (plain SVG: hundreds of rows, no canvas each).
import { svg } from './dom.js';

let uplotLoad = null;

// uPlot's script and stylesheet, once; resolves to the uPlot constructor.
export function loadUplot() {
  if (window.uPlot) return Promise.resolve(window.uPlot);
  if (!uplotLoad) {
    uplotLoad = new Promise((resolve, reject) => {
      const css = document.createElement('link');
      css.rel = 'stylesheet';
      css.href = '/ui/vendor/uplot/uPlot.min.css';
      document.head.append(css);
      const s = document.createElement('script');
      s.src = '/ui/vendor/uplot/uPlot.iife.min.js';
      s.onload = () => resolve(window.uPlot);
      s.onerror = () => {
        uplotLoad = null;
        reject(new Error('the chart library did not load'));
      };
      document.head.append(s);
    });
  }
  return uplotLoad;
}

const SEVERITIES = ['low', 'medium', 'high'];

function cssColor(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// Stacked bars of summary.buckets into el; returns a function that removes the chart.
// The stack is drawn as three overlaid bars (total, low+medium, low), the legend
// showing each severity's own count.
export function auditChart(uPlot, el, summary) {
  const b = summary.buckets || [];
  const xs = b.map((x) => Date.parse(x.ts) / 1000);
  const raw = Object.fromEntries(SEVERITIES.map((s) => [s, b.map((x) => x[s] || 0)]));
  const low = raw.low;
  const lowMed = b.map((_, i) => raw.low[i] + raw.medium[i]);
  const total = b.map((_, i) => lowMed[i] + raw.high[i]);
  const bars = uPlot.paths.bars({ size: [0.85, 64], align: 1 });
  const series = (label, key, color) => ({
    label,
    fill: color,
    stroke: color,
    width: 0,
    paths: bars,
    points: { show: false },
    value: (u, v, si, idx) => (idx === null || idx === undefined ? '–' : String(raw[key][idx])),
  });
  const opts = {
    width: Math.max(el.clientWidth, 280),
    height: 200,
    cursor: { points: { show: false } },
    legend: { live: true },
    // The last bucket's bar starts at its time: the axis runs to its end.
    scales: { x: { time: true, range: () => [xs[0], xs[xs.length - 1] + (summary.bucket_s || 1800)] }, y: { range: (u, min, max) => [0, Math.max(4, Math.ceil(max * 1.1))] } },
    axes: [
      { stroke: cssColor('--muted'), grid: { show: false } },
      { stroke: cssColor('--muted'), size: 40, grid: { stroke: '#e8ecf1' }, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000, 10000] },
    ],
    series: [
      { label: 'time', value: (u, v) => (v ? new Date(v * 1000).toLocaleString() : '–') },
      series('high', 'high', cssColor('--high')),
      series('medium', 'medium', cssColor('--medium')),
      series('low', 'low', cssColor('--low')),
    ],
  };
  const u = new uPlot(opts, [xs, total, lowMed, low], el);
  const ro = new ResizeObserver(() => {
    const w = Math.max(el.clientWidth, 280);
    if (w !== u.width) u.setSize({ width: w, height: 200 });
  });
  ro.observe(el);
  return () => {
    ro.disconnect();
    u.destroy();
  };
}

// A sparkline of counts (one bar per bucket) as SVG; bars with a high audit are red.
export function sparkline(counts, highs) {
  const n = counts.length || 1;
  const max = Math.max(1, ...counts);
  const w = 120;
  const hgt = 24;
  const bw = w / n;
  const el = svg('svg', { class: 'spark', viewBox: `0 0 ${w} ${hgt}`, preserveAspectRatio: 'none', role: 'img' },
    svg('line', { x1: 0, y1: hgt - 0.5, x2: w, y2: hgt - 0.5, class: 'base' })); // the window, oldest left
  counts.forEach((c, i) => {
    if (!c) return;
    const bh = Math.max(2, (c / max) * (hgt - 2));
    el.append(
      svg('rect', {
        x: (i * bw).toFixed(2),
        y: (hgt - bh).toFixed(2),
        width: Math.max(1, bw - 0.6).toFixed(2),
        height: bh.toFixed(2),
        class: highs && highs[i] ? 'hot' : null,
      }),
    );
  });
  return el;
}
