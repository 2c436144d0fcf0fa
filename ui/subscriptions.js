// subscriptions.js - consumer groups with their lag, in-flight and parked
// messages and consumers (GET /api/subscriptions, every 2 s); parked
// messages replayed to the group (POST /api/subscriptions/replay).
import { el, getJSON, send, start, showError, fmt } from '/ui/common.js';

async function replay(g) {
  try {
    await send('POST', `/api/subscriptions/replay?stream=${encodeURIComponent(g.stream)}&group=${encodeURIComponent(g.group)}`);
    const ok = document.getElementById('ok');
    ok.hidden = false;
    ok.textContent = `Replaying the parked messages of ${g.group} on ${g.stream}.`;
    refresh();
  } catch (e) {
    showError(e);
  }
}

async function refresh() {
  try {
    const r = await getJSON('/api/subscriptions');
    document.querySelector('#groups tbody').replaceChildren(...r.groups.map((g) =>
      el('tr', { 'data-group': g.group, 'data-stream': g.stream },
        el('td', {}, g.stream === '$all' ? '$all' : el('a', { href: `/ui/stream.html?name=${encodeURIComponent(g.stream)}` }, g.stream)),
        el('td', {}, g.group),
        el('td', { class: 'num' }, fmt(g.consumers)),
        el('td', { class: 'num' }, fmt(g.lagEvents)),
        el('td', { class: 'num' }, fmt(g.lagSeconds, 1)),
        el('td', { class: 'num' }, fmt(g.inFlight)),
        el('td', { class: 'num parked' }, fmt(g.parked)),
        el('td', {}, el('button', { type: 'button', class: 'replay', disabled: g.parked === 0, onclick: () => replay(g) }, 'Replay parked')))));
    document.getElementById('live').textContent = r.groups.length
      ? `${fmt(r.liveSubscriptions)} live catch-up subscriptions besides.`
      : `No consumer groups. ${fmt(r.liveSubscriptions)} live catch-up subscriptions.`;
    showError(null);
  } catch (e) {
    showError(e);
  }
}

(async () => {
  if (!(await start())) return;
  await refresh();
  setInterval(refresh, 2000);
})();
