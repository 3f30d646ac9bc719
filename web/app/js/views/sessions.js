// The session list: most recent activity first, more pages as it scrolls,
// and a button to start a new chat.

import { h, formatTime, announce } from '../dom.js';
import * as api from '../api.js';
import { auth } from '../auth.js';
import { state, loadMoreSessions, onChange, changed } from '../state.js';

export function sessionsPanel({ navigate }) {
  let activeId = null;
  const status = h('p', { class: 'list-status', role: 'status' });
  const list = h('ul', { class: 'session-list' });
  const sentinel = h('div', { class: 'sentinel', 'aria-hidden': 'true' });
  const scroller = h('div', { class: 'session-scroll' }, list, status, sentinel);
  const newBtn = h('button', { type: 'button', class: 'primary new-chat', text: 'New chat', onclick: createSession });
  // Why the chat that was open went away (deleted, or we were removed).
  const notice = h('p', { class: 'notice sidebar-notice', role: 'status' });
  notice.hidden = true;
  const el = h('nav', { class: 'sidebar', 'aria-label': 'Chats' },
    h('div', { class: 'sidebar-head' }, h('h2', { text: 'Chats' }), newBtn),
    notice,
    scroller);

  async function createSession() {
    newBtn.disabled = true;
    try {
      const s = await api.post('chat/sessions', { title: 'New chat' });
      state.sessions.upsert(s);
      changed();
      announce('New chat created.');
      navigate(`/chat/${s.id}`, { focusComposer: true });
    } catch (e) {
      status.textContent = e.plain ?? 'Could not create a chat.';
    } finally {
      newBtn.disabled = false;
    }
  }

  function render() {
    const items = state.sessions.items;
    list.replaceChildren(...items.map((s) => {
      const when = s.lastMessageAt || s.updatedAt || s.createdAt;
      const shared = s.ownerId && auth.user && s.ownerId !== auth.user.id;
      return h('li', {},
        h('a', {
          href: `/chat/${s.id}`, 'data-link': '', class: s.id === activeId ? 'active' : '',
          'aria-current': s.id === activeId ? 'page' : null,
        },
        h('span', { class: 'session-title', text: s.title || 'Untitled' }),
        h('span', { class: 'session-meta' }, shared ? 'Shared with you · ' : '', h('time', { datetime: when, text: formatTime(when, auth.user?.profile?.timezone) }))));
    }));
    if (state.loadingSessions) status.textContent = 'Loading chats…';
    else if (!items.length && !state.sessions.hasMore) status.textContent = 'No chats yet. Start one with “New chat”.';
    else status.textContent = '';
  }

  const load = () => {
    loadMoreSessions().catch((e) => { status.textContent = e.plain ?? 'Could not load chats.'; });
    render();
  };

  // More on scroll: when the end of the list comes into view, fetch the next page.
  const io = new IntersectionObserver((entries) => {
    if (entries.some((e) => e.isIntersecting) && state.sessions.hasMore && !state.loadingSessions) load();
  }, { root: scroller, rootMargin: '200px' });
  io.observe(sentinel);
  const off = onChange(() => {
    render();
    // A short first page may not fill the panel: keep loading until it does or nothing is left.
    requestAnimationFrame(() => {
      if (state.sessions.hasMore && !state.loadingSessions && scroller.scrollHeight <= scroller.clientHeight + 200) load();
    });
  });
  if (state.sessions.nextCursor === undefined) load();
  else render();

  return {
    el,
    setActive(id) {
      activeId = id;
      render();
    },
    /** Shows `text` above the list, or nothing when it is empty. */
    notify(text) {
      notice.textContent = text ?? '';
      notice.hidden = !text;
    },
    destroy() {
      io.disconnect();
      off();
    },
  };
}
