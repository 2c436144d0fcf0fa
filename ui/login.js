// login.js - the sign-in page (ADR 0029): the user name and password go once,
// as Basic credentials, to POST /ui/api/login, which answers with the session
// cookie (HttpOnly: this script never sees it); then back to the page asked for.
import { showError } from '/ui/common.js';

function basic(user, password) {
  const bytes = new TextEncoder().encode(`${user}:${password}`);
  let bin = '';
  for (const b of bytes) bin += String.fromCharCode(b);
  return 'Basic ' + btoa(bin);
}

function next() {
  const n = new URLSearchParams(location.search).get('next') || '/ui/';
  return n.startsWith('/ui/') && !n.startsWith('//') ? n : '/ui/'; /* only pages of the UI */
}

document.getElementById('login').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  const user = document.getElementById('user').value;
  const password = document.getElementById('password').value;
  showError(null);
  try {
    const r = await fetch('/ui/api/login', {
      method: 'POST', credentials: 'same-origin',
      headers: { Authorization: basic(user, password), 'X-Requested-With': 'factum-ui' },
    });
    if (r.status === 401) throw new Error('Wrong user name or password.');
    if (!r.ok) throw new Error(`Signing in failed: ${r.status} ${(await r.text()).trim()}`);
    location.assign(next());
  } catch (e) {
    showError(e);
    document.getElementById('password').select();
  }
});
