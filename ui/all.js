// all.js - the global log ($all) page by page both ways, newest first, with
// the server-side filters of KurrentDB's $all reads: stream-name or event-type
// prefix or regular expression, system events excluded or not (GET /api/all;
// factumd examines at most 10,000 events per page, so a sparse filter may
// show a short page: Older/Newer go on from where it stopped).
import { el, getJSON, start, showError, fmt, when, pretty } from '/ui/common.js';

const PAGE = 25;
let page = [], lastNext = null, lastDir = 'backward';

function params() {
  const expr = document.getElementById('expr').value;
  const q = new URLSearchParams({ limit: PAGE, on: document.getElementById('on').value });
  if (expr) q.set(document.getElementById('kind').value, expr);
  if (document.getElementById('nosys').checked) q.set('excludeSystem', 'true');
  return q;
}

function detail(ev) {
  document.getElementById('detail').hidden = false;
  document.getElementById('d-title').textContent = `${ev.stream} @ ${ev.version} · ${ev.type} · position ${fmt(ev.position)}`;
  document.getElementById('d-data').textContent = ev.shredded ? '(shredded)' : pretty(ev.data);
  document.getElementById('d-meta').textContent = pretty(ev.metadata);
}

async function load(from, dir) {
  try {
    const q = params();
    q.set('dir', dir);
    if (from !== null) q.set('from', from);
    const r = await getJSON(`/api/all?${q}`);
    page = dir === 'backward' ? r.events : r.events.slice().reverse();
    lastNext = r.next;
    lastDir = dir;
    document.querySelector('#events tbody').replaceChildren(...page.map((ev) =>
      el('tr', { 'data-position': ev.position, onclick: () => detail(ev) },
        el('td', { class: 'num' }, fmt(ev.position)),
        el('td', {}, el('a', { href: `/ui/stream.html?name=${encodeURIComponent(ev.stream)}` }, ev.stream)),
        el('td', { class: 'num' }, fmt(ev.version)), el('td', {}, ev.type), el('td', {}, when(ev.time)))));
    document.getElementById('range').textContent = page.length
      ? `positions ${fmt(page[page.length - 1].position)} to ${fmt(page[0].position)} (the log's last: ${fmt(r.head)})`
      : `nothing here (the log's last position: ${fmt(r.head)})`;
    if (page.length) detail(page[0]);
    else document.getElementById('detail').hidden = true;
    showError(null);
  } catch (e) {
    showError(e);
  }
}

(async () => {
  if (!(await start())) return;
  document.getElementById('filter').addEventListener('submit', (ev) => { ev.preventDefault(); load(null, 'backward'); });
  document.getElementById('last').addEventListener('click', () => load(null, 'backward'));
  document.getElementById('first').addEventListener('click', () => load(0, 'forward'));
  document.getElementById('older').addEventListener('click', () => {
    if (page.length) load(page[page.length - 1].position - 1, 'backward');
    else if (lastDir === 'backward' && lastNext) load(lastNext, 'backward');
  });
  document.getElementById('newer').addEventListener('click', () => {
    if (page.length) load(page[0].position + 1, 'forward');
    else if (lastDir === 'forward' && lastNext) load(lastNext, 'forward');
  });
  load(null, 'backward');
})();
