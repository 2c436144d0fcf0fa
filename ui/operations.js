// operations.js - scavenge: start (POST /admin/scavenge), follow its progress
// (GET /admin/scavenge: the last one, every second), stop (DELETE
// /admin/scavenge/current). $ops or $admins.
import { el, getJSON, send, start, showError, fmt, bytes, when } from '/ui/common.js';

function show(s) {
  const running = s && s.state === 'running';
  document.getElementById('start').disabled = running;
  document.getElementById('stop').disabled = !running;
  const p = document.getElementById('progress');
  p.hidden = !s;
  if (s) {
    p.max = Math.max(1, s.segments);
    p.value = Math.min(s.segment, s.segments);
  }
  const rows = !s ? [['Last scavenge', 'none since factumd started']] : [
    ['Id', s.scavengeId], ['State', s.state + (s.error ? `: ${s.error}` : '')],
    ['Segments', `${fmt(Math.min(s.segment, s.segments))} of ${fmt(s.segments)} (${fmt(s.compacted)} compacted, ${fmt(s.skipped)} skipped)`],
    ['Events removed', fmt(s.eventsRemoved)], ['Space saved', bytes(s.spaceSaved)],
    ['Started', when(s.startedAt / 1e6)], ['Finished', s.finishedAt ? when(s.finishedAt / 1e6) : '–']];
  document.getElementById('status').replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', { 'data-k': k }, v)]));
}

async function refresh() {
  try {
    const s = await getJSON('/admin/scavenge'); // the last one, or {state: 'none'}
    show(s.state === 'none' ? null : s);
    showError(null);
  } catch (e) {
    showError(e);
  }
}

(async () => {
  if (!(await start())) return;
  document.getElementById('scavenge').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const t = Number(document.getElementById('threshold').value) || 0;
      const seal = document.getElementById('seal').checked;
      const r = await (await send('POST', `/admin/scavenge?threshold=${t}&seal=${seal}`)).json();
      const ok = document.getElementById('ok');
      ok.hidden = false;
      ok.textContent = `Scavenge ${r.scavengeId} started.`;
      refresh();
    } catch (e) {
      showError(e);
    }
  });
  document.getElementById('stop').addEventListener('click', async () => {
    try {
      await send('DELETE', '/admin/scavenge/current');
      refresh();
    } catch (e) {
      showError(e);
    }
  });
  await refresh();
  setInterval(refresh, 1000);
})();
