// streams.js - the streams, in creation order, searched by prefix (GET
// /api/streams, a page at a time: factumd scans at most 10,000 per call).
import { el, getJSON, start, showError, fmt, when } from '/ui/common.js';

let next = 0, shown = 0;

async function load(more) {
  const prefix = document.getElementById('prefix').value;
  const body = document.querySelector('#streams tbody');
  if (!more) {
    body.replaceChildren();
    next = 0;
    shown = 0;
  }
  try {
    const r = await getJSON(`/api/streams?prefix=${encodeURIComponent(prefix)}&after=${next}&limit=50`);
    for (const s of r.streams) {
      body.append(el('tr', { 'data-stream': s.name },
        el('td', {}, el('a', { href: `/ui/stream.html?name=${encodeURIComponent(s.name)}` }, s.name)),
        el('td', { class: 'num' }, s.lastVersion >= 0 ? fmt(s.lastVersion + 1) : '0'),
        el('td', { class: 'num' }, fmt(s.lastPosition)),
        el('td', {}, when(s.lastTime)),
        el('td', {}, s.status)));
    }
    shown += r.streams.length;
    next = r.next;
    document.getElementById('more').hidden = !r.more;
    document.getElementById('count').textContent = `${fmt(shown)} shown${r.more ? ', more to look at' : ''}`;
    showError(null);
  } catch (e) {
    showError(e);
  }
}

(async () => {
  if (!(await start())) return;
  const q = new URLSearchParams(location.search).get('prefix');
  if (q) document.getElementById('prefix').value = q;
  document.getElementById('search').addEventListener('submit', (ev) => {
    ev.preventDefault();
    history.replaceState(null, '', `?prefix=${encodeURIComponent(document.getElementById('prefix').value)}`);
    load(false);
  });
  document.getElementById('more').addEventListener('click', () => load(true));
  load(false);
})();
