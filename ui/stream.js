// stream.js - one stream's events, a page at a time both ways (GET
// /api/stream), an event's detail (data and metadata pretty-printed, or hex
// for binary; a link's target), and the stream's metadata.
import { el, getJSON, start, showError, fmt, when, pretty } from '/ui/common.js';

const PAGE = 20;
const name = new URLSearchParams(location.search).get('name') || '';
let page = [];

function fields(ev) {
  return [['Stream', ev.stream], ['Version', fmt(ev.version)], ['Position', fmt(ev.position)], ['Type', ev.type],
    ['Id', ev.id], ['Time', when(ev.time)], ['Content', ev.shredded ? 'shredded (its subject was erased)' : ev.isJson ? 'JSON' : 'binary']];
}

function detail(ev) {
  const d = document.getElementById('detail');
  d.hidden = false;
  document.getElementById('d-title').textContent = `${ev.type} @ ${ev.version}`;
  document.getElementById('d-fields').replaceChildren(...fields(ev).flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  document.getElementById('d-data').textContent = pretty(ev.data);
  document.getElementById('d-meta').textContent = pretty(ev.metadata);
  const t = document.getElementById('d-target');
  t.replaceChildren();
  if (ev.target) {
    t.append(el('h3', {}, 'Link to'),
      el('p', {}, el('a', { href: `/ui/stream.html?name=${encodeURIComponent(ev.target.stream)}` }, `${ev.target.stream} @ ${ev.target.version}`),
        ` (${ev.target.type})`),
      el('pre', {}, pretty(ev.target.data)));
  }
  for (const tr of document.querySelectorAll('#events tbody tr')) tr.classList.toggle('sel', Number(tr.dataset.version) === ev.version);
}

async function load(from, dir) {
  try {
    const q = `name=${encodeURIComponent(name)}&dir=${dir}&limit=${PAGE}` + (from === null ? '' : `&from=${from}`);
    const r = await getJSON(`/api/stream?${q}`);
    page = dir === 'backward' ? r.events : r.events.slice().reverse(); // newest first on screen
    const body = document.querySelector('#events tbody');
    body.replaceChildren(...page.map((ev) => el('tr', { 'data-version': ev.version, onclick: () => detail(ev) },
      el('td', { class: 'num' }, fmt(ev.version)), el('td', {}, ev.type), el('td', { class: 'num' }, fmt(ev.position)),
      el('td', {}, when(ev.time)))));
    document.getElementById('range').textContent = page.length
      ? `versions ${fmt(page[page.length - 1].version)} to ${fmt(page[0].version)}` : 'no events';
    if (page.length) detail(page[0]);
    showError(null);
  } catch (e) {
    showError(e);
  }
}

(async () => {
  if (!(await start())) return;
  document.getElementById('name').textContent = name;
  document.title = `factum · ${name}`;
  document.getElementById('last').addEventListener('click', () => load(null, 'backward'));
  document.getElementById('first').addEventListener('click', () => load(0, 'forward'));
  document.getElementById('older').addEventListener('click', () => {
    const oldest = page.length ? page[page.length - 1].version : 0;
    if (oldest > 0) load(oldest - 1, 'backward');
  });
  document.getElementById('newer').addEventListener('click', () => {
    if (page.length) load(page[0].version + 1, 'forward');
  });
  await load(null, 'backward');
  try {
    const m = await getJSON(`/api/stream/metadata?name=${encodeURIComponent(name)}`);
    document.getElementById('metadata').textContent = m.version < 0 ? '(none set)' : `${pretty(m.metadata)}\n(version ${m.version})`;
  } catch (e) {
    document.getElementById('metadata').textContent = String(e.message || e);
  }
})();
