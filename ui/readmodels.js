// readmodels.js - the read models (GET /readmodels, every 2 s) with their
// state and lag; pause, resume and rebuild (POST /readmodels/<name>/...);
// a query console (GET /readmodels/<name>/query) whose rows are shown as text.
import { el, getJSON, send, start, showError, fmt } from '/ui/common.js';

function note(text) {
  const ok = document.getElementById('ok');
  ok.hidden = false;
  ok.textContent = text;
}

async function act(name, what) {
  try {
    await send('POST', `/readmodels/${encodeURIComponent(name)}/${what}`);
    note(`${name}: ${what === 'rebuild' ? 'rebuilding' : what + 'd'}.`);
    refresh();
  } catch (e) {
    showError(e);
  }
}

let names = [];

async function refresh() {
  try {
    const r = await getJSON('/readmodels');
    const models = r.readModels || [];
    document.getElementById('none').hidden = models.length > 0;
    document.querySelector('#models tbody').replaceChildren(...models.map((m) => el('tr', { 'data-model': m.name },
      el('td', {}, m.name),
      el('td', { class: `state ${m.state}` }, m.state + (m.rebuild ? ` (rebuilding: ${fmt(m.rebuild.position)})` : '')),
      el('td', {}, m.lifecycle),
      el('td', {}, m.target),
      el('td', { class: 'num' }, fmt(m.position)),
      el('td', { class: 'num lag' }, fmt(m.lagEvents)),
      el('td', { class: 'num' }, fmt(m.lagSeconds, 1)),
      el('td', { class: 'num' }, fmt(m.eventsPerSecond)),
      el('td', { class: 'actions' },
        m.state === 'paused' ? el('button', { type: 'button', onclick: () => act(m.name, 'resume') }, 'Resume')
          : el('button', { type: 'button', onclick: () => act(m.name, 'pause') }, 'Pause'),
        el('button', { type: 'button', class: 'rebuild', onclick: () => act(m.name, 'rebuild') }, 'Rebuild')))));
    const now = models.map((m) => m.name);
    if (now.join('\n') !== names.join('\n')) {
      const sel = document.getElementById('q-model');
      const keep = sel.value;
      sel.replaceChildren(...now.map((n) => el('option', { value: n, selected: n === keep }, n)));
      names = now;
    }
    showError(null);
  } catch (e) {
    showError(e);
  }
}

async function query(ev) {
  ev.preventDefault();
  const name = document.getElementById('q-model').value;
  const sql = document.getElementById('q-sql').value;
  const t0 = performance.now();
  try {
    const r = await getJSON(`/readmodels/${encodeURIComponent(name)}/query?sql=${encodeURIComponent(sql)}&row_limit=1000`);
    const cell = (v) => (v !== null && typeof v === 'object' ? JSON.stringify(v) : v === null ? 'NULL' : String(v));
    document.querySelector('#q-result thead').replaceChildren(el('tr', {}, r.columns.map((c) => el('th', {}, c))));
    document.querySelector('#q-result tbody').replaceChildren(...r.rows.map((row) => el('tr', {}, row.map((v) => el('td', {}, cell(v))))));
    document.getElementById('q-info').textContent =
      `${fmt(r.rows.length)} rows${r.truncated ? ' (cut at 1,000)' : ''} in ${fmt(performance.now() - t0)} ms, as of position ${fmt(r.position)}`;
    showError(null);
  } catch (e) {
    showError(e);
  }
}

(async () => {
  if (!(await start())) return;
  document.getElementById('query').addEventListener('submit', query);
  await refresh();
  setInterval(refresh, 2000);
})();
