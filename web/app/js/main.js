// The shell: routing (client-side paths the server answers with index.html),
// sign-in state, the header with the connection status, and the two-pane
// layout (list and chat side by side from 768 px, one at a time below).

import { h, announce } from './dom.js';
import { auth } from './auth.js';
import { gateway } from './gateway.js';
import { resetState } from './state.js';
import { authView } from './views/auth.js';
import { sessionsPanel } from './views/sessions.js';
import { chatView } from './views/chat.js';
import { profileView } from './views/profile.js';
import { applyTheme, themeFromUser } from './theme-switch.js';

const app = document.getElementById('app');
let shell = null; // {el, sidebar, main, current}
let signOutNotice = null;

function route(path = location.pathname) {
  const m = path.match(/^\/chat\/([^/]+)\/?$/);
  if (m) return { name: 'chat', id: decodeURIComponent(m[1]) };
  if (path === '/profile') return { name: 'profile' };
  if (path === '/signin' || path === '/signup') return { name: path.slice(1) };
  return { name: 'home' };
}

export function navigate(path, opts = {}) {
  if (path !== location.pathname) history.pushState({}, '', path);
  render(opts);
}

function render(opts = {}) {
  const r = route();
  if (!auth.signedIn) {
    teardownShell();
    if (r.name !== 'signin' && r.name !== 'signup') {
      // Come back here after signing in.
      if (r.name === 'chat' || r.name === 'profile') sessionStorage.setItem('specgen.after', location.pathname);
      history.replaceState({}, '', '/signin');
    }
    const mode = route().name === 'signup' ? 'signup' : 'signin';
    app.replaceChildren(authView({ mode, navigate, notice: signOutNotice }));
    app.removeAttribute('aria-busy');
    document.title = mode === 'signup' ? 'Create account · Spec Gen' : 'Sign in · Spec Gen';
    app.querySelector('input')?.focus();
    return;
  }
  signOutNotice = null;
  if (r.name === 'signin' || r.name === 'signup') {
    history.replaceState({}, '', '/');
    return render(opts);
  }
  ensureShell();
  const { current } = shell;
  const key = r.name === 'chat' ? `chat:${r.id}` : r.name;
  shell.el.dataset.view = r.name;
  shell.sidebar.setActive(r.name === 'chat' ? r.id : null);
  shell.sidebar.notify(opts.notice);
  if (current?.key === key) {
    if (opts.focusComposer) current.view.focusComposer?.();
    return;
  }
  current?.view.destroy?.();
  let view;
  if (r.name === 'chat') {
    view = chatView({ sessionId: r.id, navigate, focusComposer: !!opts.focusComposer });
    document.title = 'Chat · Spec Gen';
  } else if (r.name === 'profile') {
    view = { el: profileView({ navigate }) };
    document.title = 'Profile · Spec Gen';
  } else {
    view = {
      el: h('div', { class: 'empty-main' },
        h('h1', { text: `Hello, ${auth.user?.profile?.displayName || auth.user?.name || 'there'}` }),
        h('p', { text: 'Pick a chat, or start a new one.' })),
    };
    document.title = 'Spec Gen';
  }
  shell.current = { key, view };
  shell.main.replaceChildren(view.el);
  if (!opts.focusComposer && opts.fromUser) shell.main.querySelector('h1')?.focus?.();
}

function ensureShell() {
  if (shell) return;
  const status = h('span', { class: 'conn', role: 'status', 'aria-live': 'polite' });
  const setStatus = (s) => {
    status.dataset.state = s;
    status.textContent = s === 'open' ? 'Live' : s === 'connecting' ? 'Connecting…' : s === 'waiting' ? 'Offline, retrying…' : '';
    status.title = s === 'open' ? 'Replies and colleagues’ messages arrive live.' : 'Live updates are paused; sending still works over HTTP.';
  };
  const onStatus = (e) => setStatus(e.detail);
  gateway.addEventListener('status', onStatus);
  setStatus(gateway.state);
  const profileLink = h('a', { href: '/profile', 'data-link': '', class: 'profile-link' });
  const showName = () => {
    const name = auth.user?.profile?.displayName || auth.user?.name || 'Profile';
    profileLink.textContent = name;
    profileLink.setAttribute('aria-label', `Profile (${name})`);
  };
  showName();
  auth.addEventListener('user', showName);
  const header = h('header', { class: 'topbar' },
    h('a', { href: '/', 'data-link': '', class: 'brand', text: 'Spec Gen' }),
    status,
    h('nav', { class: 'topnav', 'aria-label': 'Account' },
      profileLink,
      h('button', { type: 'button', class: 'signout', text: 'Sign out', onclick: () => auth.logout().catch(() => {}) })));
  const sidebar = sessionsPanel({ navigate });
  const main = h('main', { id: 'main', class: 'main', tabindex: '-1' });
  const el = h('div', { class: 'shell' }, header, h('div', { class: 'panes' }, sidebar.el, main));
  app.replaceChildren(el);
  app.removeAttribute('aria-busy');
  shell = {
    el, sidebar, main, current: null,
    off: () => {
      gateway.removeEventListener('status', onStatus);
      auth.removeEventListener('user', showName);
    },
  };
  gateway.start();
}

function teardownShell() {
  if (!shell) return;
  shell.current?.view.destroy?.();
  shell.sidebar.destroy();
  shell.off();
  shell = null;
}

// Links marked data-link navigate without a page load.
document.addEventListener('click', (e) => {
  const a = e.target.closest?.('a[data-link]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  navigate(a.getAttribute('href'), { fromUser: true });
});
window.addEventListener('popstate', () => render());

auth.addEventListener('signedin', () => {
  applyTheme(themeFromUser(auth.user));
  const after = sessionStorage.getItem('specgen.after');
  sessionStorage.removeItem('specgen.after');
  navigate(after || '/');
});
auth.addEventListener('signedout', (e) => {
  gateway.stop();
  resetState();
  signOutNotice = e.detail?.reason ?? null;
  announce(signOutNotice ?? 'Signed out.');
  navigate('/signin');
});

async function boot() {
  try {
    if (await auth.restore()) applyTheme(themeFromUser(auth.user));
  } catch {
    signOutNotice = 'Could not reach the server. Check your connection and reload.';
  }
  render();
}

boot();
