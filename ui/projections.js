// projections.js - projections (GET /api/projections, every 2 s) with their
// state and progress; one projection's query in an editor (CodeMirror),
// saved (POST to create, PUT to change), enabled, disabled, reset or deleted
// (/api/projection...), and its state and result (GET /api/projection).
import { el, getJSON, send, start, showError, fmt, pretty, confirmName } from '/ui/common.js';

const EXAMPLE = `fromAll()
  .when({
    $init: function () { return { count: 0 }; },
    $any: function (s, e) { s.count++; return s; }
  })
  .outputState();`;

let editor = null, current = null; // the projection shown (null: a new one)

function note(text) {
  const ok = document.getElementById('ok');
  ok.hidden = false;
  ok.textContent = text;
  showError(null);
}

async function refresh() {
  try {
    const r = await getJSON('/api/projections');
    document.querySelector('#projections tbody').replaceChildren(...r.projections.map((p) =>
      el('tr', { 'data-name': p.name, onclick: () => open(p.name) },
        el('td', {}, p.name), el('td', {}, p.mode),
        el('td', { class: `state ${p.state}` }, p.state + (p.reason ? `: ${p.reason}` : '')),
        el('td', { class: 'num' }, `${fmt(p.progress, 1)} %`), el('td', { class: 'num' }, fmt(p.position)),
        el('td', { class: 'num' }, fmt(p.lagEvents)), el('td', { class: 'num' }, fmt(p.eventsPerSecond)))));
    if (current) await show(current, false);
  } catch (e) {
    showError(e);
  }
}

async function show(name, fresh) {
  const r = await getJSON(`/api/projection?name=${encodeURIComponent(name)}`);
  const s = r.status;
  if (fresh) editor.setValue(r.query || '');
  document.getElementById('p-title').textContent = s.name;
  document.getElementById('p-state').textContent =
    `${s.state}${s.reason ? `: ${s.reason}` : ''} · ${fmt(s.eventsProcessed)} events · position ${fmt(s.position)}`;
  document.getElementById('p-st').textContent = r.state === null ? '(none yet)' : pretty(r.state);
  document.getElementById('p-result').textContent = r.result === null ? '(none yet)' : pretty(r.result);
  for (const id of ['p-enable', 'p-disable', 'p-reset', 'p-delete']) document.getElementById(id).disabled = false;
  document.getElementById('p-enable').disabled = s.state === 'running';
  document.getElementById('p-disable').disabled = s.state !== 'running';
  document.getElementById('p-delete').disabled = s.system || s.state === 'running';
}

async function open(name) {
  current = name;
  document.getElementById('editor').hidden = false;
  document.getElementById('p-name-label').hidden = true;
  document.getElementById('p-options').hidden = true;
  editor.refresh();
  try { await show(name, true); } catch (e) { showError(e); }
}

function openNew() {
  current = null;
  document.getElementById('editor').hidden = false;
  document.getElementById('p-title').textContent = 'New projection';
  document.getElementById('p-name-label').hidden = false;
  document.getElementById('p-options').hidden = false;
  document.getElementById('p-name').value = '';
  document.getElementById('p-state').textContent = '';
  document.getElementById('p-st').textContent = '';
  document.getElementById('p-result').textContent = '';
  for (const id of ['p-enable', 'p-disable', 'p-reset', 'p-delete']) document.getElementById(id).disabled = true;
  editor.setValue(EXAMPLE);
  editor.refresh();
}

async function command(path, method, text) {
  try {
    await send(method, `/api/projection${path}?name=${encodeURIComponent(current)}`);
    note(text);
    await refresh();
  } catch (e) {
    showError(e);
  }
}

(async () => {
  if (!(await start())) return;
  editor = CodeMirror.fromTextArea(document.getElementById('p-query'), {
    mode: 'javascript', lineNumbers: true, indentUnit: 2, tabSize: 2, viewportMargin: Infinity,
  });
  document.getElementById('new').addEventListener('click', openNew);
  document.getElementById('p-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const query = editor.getValue();
    try {
      if (current === null) {
        const name = document.getElementById('p-name').value.trim();
        const mode = document.getElementById('p-mode').value;
        const emit = document.getElementById('p-emit').checked;
        await send('POST', `/api/projection?name=${encodeURIComponent(name)}&mode=${mode}&emit=${emit}`, query);
        note(`Projection ${name} created.`);
        await refresh();
        await open(name);
      } else {
        await send('PUT', `/api/projection?name=${encodeURIComponent(current)}`, query);
        note(`Projection ${current} saved: it goes on from its checkpoint with the new query.`);
        await refresh();
      }
    } catch (e) {
      showError(e);
    }
  });
  document.getElementById('p-enable').addEventListener('click', () => command('/enable', 'POST', `${current} enabled.`));
  document.getElementById('p-disable').addEventListener('click', () => command('/disable', 'POST', `${current} disabled.`));
  document.getElementById('p-reset').addEventListener('click', () => command('/reset', 'POST', `${current} reset: it starts again from the beginning of the log.`));
  document.getElementById('p-delete').addEventListener('click', async () => {
    if (!(await confirmName(`Delete the projection ${current}?`, current))) return;
    const streams = document.getElementById('confirm-streams').checked;
    try {
      await send('DELETE', `/api/projection?name=${encodeURIComponent(current)}` +
        (streams ? '&deleteStateStream=true&deleteCheckpointStream=true' : ''));
      note(`Projection ${current} deleted.`);
      current = null;
      document.getElementById('editor').hidden = true;
      await refresh();
    } catch (e) {
      showError(e);
    }
  });
  await refresh();
  setInterval(refresh, 2000);
})();
