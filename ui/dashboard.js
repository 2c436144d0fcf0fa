// dashboard.js - the dashboard (ADR 0029): the node (version, uptime,
// durability, data directory) and live charts of the last five minutes,
// computed each second from the counters of GET /metrics.
import { el, getJSON, getMetrics, header, session, showError, fmt, bytes } from '/ui/common.js';

const KEEP = 300; // seconds shown
const SERIES = [
  // [id, title, unit, value from (now, before, seconds)]
  ['appends', 'Appends/s', '/s', (m, p, dt) => rate(m, p, 'factum_appends_total', dt)],
  ['events', 'Events written/s', '/s', (m, p, dt) => rate(m, p, 'factum_events_written_total', dt)],
  ['reads', 'Events read/s', '/s', (m, p, dt) => rate(m, p, 'factum_grpc_read_events_total', dt)],
  ['group', 'Appends per group commit', '', (m, p) => ratio(m, p, 'factum_appends_total', 'factum_group_commits_total')],
  ['fsync', 'fdatasync latency (ms)', 'ms', (m, p) => 1000 * ratio(m, p, 'factum_fsync_seconds_total', 'factum_fsync_total')],
  ['conns', 'Connections', '', (m) => m.factum_connections],
];

function rate(m, p, name, dt) {
  return p && m[name] !== undefined && p[name] !== undefined ? Math.max(0, (m[name] - p[name]) / dt) : null;
}
function ratio(m, p, num, den) {
  if (!p) return null;
  const d = m[den] - p[den];
  return d > 0 ? (m[num] - p[num]) / d : 0;
}

const data = [[], ...SERIES.map(() => [])];
const plots = [];
let prev = null, prevT = 0;

function makeCharts() {
  const box = document.getElementById('charts');
  SERIES.forEach(([id, title], i) => {
    const div = el('div', { class: 'chart', id: `chart-${id}` }, el('h2', {}, title), el('p', { class: 'now', id: `now-${id}` }, '–'));
    box.append(div);
    const width = Math.max(240, div.clientWidth - 22); /* the card's, inside its padding */
    plots.push(new uPlot({
      width, height: 160, legend: { show: false }, cursor: { show: false },
      axes: [{ values: (u, ticks) => ticks.map((t) => new Date(t * 1000).toLocaleTimeString('en-GB')) }, {}],
      scales: { x: { time: true }, y: { range: (u, lo, hi) => [0, Math.max(1, hi * 1.15)] } },
      series: [{}, { stroke: '#2b6cb0', fill: 'rgba(43,108,176,0.12)', width: 1.5 }],
    }, [data[0], data[i + 1]], div));
  });
}

let dataDir = null; // administrators only (GET /ui/api/session)

function node(info, m) {
  const up = m.process_start_time_seconds === undefined ? undefined : Date.now() / 1000 - m.process_start_time_seconds;
  document.getElementById('node').replaceChildren(
    card('Version', info.factumVersion),
    card('Durability', info.durability),
    card('Last position', fmt(info.lastPosition)),
    card('Log on disk', bytes(m.factum_log_bytes)),
    card('Uptime', up === undefined ? '–' : `${Math.floor(up / 3600)} h ${Math.floor(up / 60) % 60} min`),
    card('Security', info.authentication.type === 'insecure' ? 'none (--insecure)' : `${info.tls ? 'TLS, ' : ''}users`),
    dataDir ? card('Data directory', dataDir) : '');
}
function card(k, v) {
  return el('div', { class: 'card' }, el('span', { class: 'k' }, k), el('span', { class: 'v', 'data-k': k }, v));
}

async function tick() {
  try {
    const [info, m] = await Promise.all([getJSON('/info'), getMetrics()]);
    const t = Date.now() / 1000;
    const dt = prev ? t - prevT : 0;
    node(info, m);
    if (prev && dt > 0) {
      data[0].push(t);
      SERIES.forEach(([id, , unit, f], i) => {
        const v = f(m, prev, dt);
        data[i + 1].push(v);
        document.getElementById(`now-${id}`).textContent = v === null ? '–' : `${fmt(v, v < 10 ? 2 : 0)}${unit && unit !== '/s' ? ' ' + unit : ''}`;
      });
      if (data[0].length > KEEP) data.forEach((d) => d.shift());
      plots.forEach((p, i) => p.setData([data[0], data[i + 1]]));
    }
    prev = m;
    prevT = t;
    showError(null);
  } catch (e) {
    showError(e);
  }
}

(async () => {
  let info = null, who = null;
  try {
    who = await session(); // the sign-in page if nobody is signed in
    info = await getJSON('/info');
  } catch (e) { showError(e); return; }
  header(info, who);
  dataDir = who.dataDirectory || null;
  makeCharts();
  await tick();
  setInterval(tick, 1000);
})();
