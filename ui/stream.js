// stream.js - one stream's events, a page at a time both ways (GET
// /api/stream), an event's detail (data and metadata pretty-printed, or hex
// for binary; a link's target), and the stream's metadata.
import { el, getJSON, send, start, showError, fmt, when, pretty, confirmName } from '/ui/common.js';

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
  await loadMeta();
  wireChanges();
})();

let meta = { version: -1, metadata: {} };
const q = `name=${encodeURIComponent(name)}`;

async function loadMeta() {
  try {
    meta = await getJSON(`/api/stream/metadata?${q}`);
    document.getElementById('metadata').textContent = meta.version < 0 ? '(none set)' : `${pretty(meta.metadata)}\n(version ${meta.version})`;
  } catch (e) {
    document.getElementById('metadata').textContent = String(e.message || e);
  }
}

function done(text) {
  const p = document.getElementById('ok');
  p.hidden = false;
  p.textContent = text;
  showError(null);
}

function wireChanges() {
  document.getElementById('meta-edit').addEventListener('click', () => {
    document.getElementById('meta-text').value = JSON.stringify(meta.metadata || {}, null, 2);
    document.getElementById('meta-form').hidden = false;
  });
  document.getElementById('meta-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const text = document.getElementById('meta-text').value;
      JSON.parse(text); // a clear error before the round trip
      const expected = meta.version < 0 ? 'no-stream' : meta.version; // optimistic: someone else's change is not overwritten
      await send('PUT', `/api/stream/metadata?${q}&expected=${expected}`, text);
      document.getElementById('meta-form').hidden = true;
      await loadMeta();
      done('Metadata saved.');
    } catch (e) {
      showError(e);
    }
  });
  document.getElementById('append').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const type = document.getElementById('ev-type').value;
      const data = JSON.parse(document.getElementById('ev-data').value || 'null');
      const mt = document.getElementById('ev-meta').value.trim();
      const body = { type, data };
      if (mt) body.metadata = JSON.parse(mt);
      const r = await (await send('POST', `/api/stream?${q}`, body)).json();
      await load(null, 'backward');
      done(`Appended at version ${r.lastVersion}, position ${r.position}.`);
    } catch (e) {
      showError(e);
    }
  });
  for (const [id, hard] of [['delete', false], ['tombstone', true]]) {
    document.getElementById(id).addEventListener('click', async () => {
      const what = hard ? `Delete ${name} for good? It can never be written again.` : `Delete ${name}?`;
      if (!(await confirmName(what, name))) return;
      try {
        await send('DELETE', `/api/stream?${q}${hard ? '&hard=true' : ''}`);
        done(hard ? 'The stream is tombstoned.' : 'The stream is deleted.');
        await load(null, 'backward');
      } catch (e) {
        showError(e);
      }
    });
  }
}
