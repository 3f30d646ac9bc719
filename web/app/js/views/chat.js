// One chat session: its history (windowed, so thousands of messages stay
// smooth), the live stream of replies over the WebSocket, the composer, the
// provider picker, and sharing.
//
// Live channel: the gateway. While it is down, sending falls back to the
// HTTP endpoint with Server-Sent Events, and replies that were already
// streaming are polled; both feed the same MessageList, which dedupes by
// message id and chunk seq, so two channels never show text twice.

import { h, field, announce, formatTime } from '../dom.js';
import * as api from '../api.js';
import { auth } from '../auth.js';
import { gateway } from '../gateway.js';
import { state, changed, loadProviders } from '../state.js';
import { MessageList, FINAL } from '../lib/messages.js';
import { SseParser } from '../lib/sse.js';
import { newId } from '../lib/ids.js';
import * as win from '../lib/window.js';
import * as rules from '../lib/validate.js';
import { renderMarkdown } from '../markdown.js';

const PAGE = 50;
const EDGE_PX = 600; // how close to an edge of the rendered slice before it slides
const BOTTOM_PX = 48; // within this of the bottom counts as "at the bottom"
const TYPING_SEND_EVERY_MS = 2500;
const TYPING_IDLE_MS = 4000;
const TYPING_SHOWN_MS = 6000;
const CONFIRM_WITHIN_MS = 12000;

export function chatView({ sessionId, navigate, focusComposer = false }) {
  const me = auth.user?.id;
  const list = new MessageList(sessionId);
  let session = state.sessions.get(sessionId);
  let participants = [];
  let slice = { start: 0, end: 0 };
  let destroyed = false;
  // Set while this user deletes or leaves the chat from here.
  let leaving = false;
  let loadingOlder = false;
  let renderQueued = false;
  let stickToBottom = true;
  const elements = new Map(); // message id -> {el, rev}
  const sends = new Map(); // clientMessageId -> {content, timer, userMessageId}
  const typers = new Map(); // userId -> expiry time
  const cleanups = [];

  // ---------- layout ----------
  const titleEl = h('h1', { class: 'chat-title', tabindex: '-1' });
  const peopleEl = h('p', { class: 'chat-people' });
  const actions = h('div', { class: 'chat-actions' });
  const panel = h('div', { class: 'chat-panel', hidden: true });
  const header = h('header', { class: 'chat-head' },
    h('a', { href: '/', 'data-link': '', class: 'back', 'aria-label': 'Back to chats', text: '‹ Chats' }),
    h('div', { class: 'chat-heading' }, titleEl, peopleEl),
    actions);
  const topStatus = h('p', { class: 'history-status', role: 'status' });
  const msgs = h('div', { class: 'messages' });
  const scroller = h('div', {
    class: 'message-scroll', role: 'log', 'aria-live': 'off', 'aria-label': 'Messages', tabindex: '0',
  }, topStatus, msgs);
  const latestBtn = h('button', { type: 'button', class: 'latest', hidden: true, text: 'Jump to latest ↓', onclick: () => toLatest() });
  const typingEl = h('p', { class: 'typing', 'aria-live': 'polite' });

  const input = h('textarea', {
    id: `composer-${sessionId}`, class: 'composer-input', rows: '1', name: 'message',
    placeholder: 'Type a message',
    'aria-describedby': `composer-err-${sessionId} composer-help-${sessionId}`,
  });
  const composerErr = h('p', { id: `composer-err-${sessionId}`, class: 'field-error', 'aria-live': 'polite' });
  const providerSel = h('select', { id: `provider-${sessionId}`, class: 'provider' });
  const modelInput = h('input', { id: `model-${sessionId}`, class: 'model', list: `models-${sessionId}`, autocomplete: 'off', spellcheck: 'false' });
  const modelList = h('datalist', { id: `models-${sessionId}` });
  const demoNote = h('span', { class: 'demo-note', hidden: true, text: 'Demo: canned replies, not a real AI' });
  const sendBtn = h('button', { type: 'submit', class: 'primary send', text: 'Send' });
  const stopBtn = h('button', { type: 'button', class: 'stop', hidden: true, text: 'Stop', onclick: () => stop() });
  const composer = h('form', { class: 'composer', 'aria-label': 'Send a message' },
    h('label', { for: input.id, class: 'sr-only', text: 'Message' }),
    h('p', { id: `composer-help-${sessionId}`, class: 'sr-only', text: 'Enter sends. Shift and Enter adds a new line.' }),
    h('div', { class: 'composer-row' }, input, h('div', { class: 'composer-buttons' }, stopBtn, sendBtn)),
    composerErr,
    h('div', { class: 'picker' },
      h('label', { for: providerSel.id, text: 'Provider' }), providerSel,
      h('label', { for: modelInput.id, text: 'Model' }), modelInput, modelList, demoNote,
      h('span', { class: 'keys-hint', 'aria-hidden': 'true', text: 'Enter sends · Shift+Enter adds a line' })));

  const el = h('section', { class: 'chat', 'aria-labelledby': titleEl.id = `title-${sessionId}` },
    header, panel, h('div', { class: 'scroll-wrap' }, scroller, latestBtn), typingEl, composer);

  // ---------- names ----------
  const nameOf = (userId) => {
    if (userId === me) return 'You';
    return participants.find((p) => p.userId === userId)?.name ?? 'Someone';
  };
  const isOwner = () => session && session.ownerId === me;

  function renderHeader() {
    titleEl.textContent = session?.title || 'Chat';
    const others = participants.filter((p) => p.userId !== me).map((p) => p.name);
    peopleEl.textContent = others.length ? `With ${others.join(', ')}` : 'Only you';
    const buttons = [h('button', { type: 'button', text: 'Share', 'aria-expanded': String(panelMode === 'share'), onclick: () => togglePanel('share') })];
    if (isOwner()) {
      buttons.push(h('button', { type: 'button', text: 'Rename', 'aria-expanded': String(panelMode === 'rename'), onclick: () => togglePanel('rename') }));
      buttons.push(h('button', { type: 'button', class: 'danger', text: 'Delete', 'aria-expanded': String(panelMode === 'delete'), onclick: () => togglePanel('delete') }));
    } else if (session) {
      buttons.push(h('button', { type: 'button', text: 'Leave', 'aria-expanded': String(panelMode === 'leave'), onclick: () => togglePanel('leave') }));
    }
    actions.replaceChildren(...buttons);
  }

  // ---------- panels: share, rename, delete, leave ----------
  let panelMode = null;
  function togglePanel(mode) {
    panelMode = panelMode === mode ? null : mode;
    renderHeader();
    renderPanel();
  }

  function renderPanel() {
    panel.hidden = !panelMode;
    if (!panelMode) {
      panel.replaceChildren();
      return;
    }
    const err = h('p', { class: 'form-error', role: 'alert' });
    const close = h('button', { type: 'button', text: 'Cancel', onclick: () => togglePanel(panelMode) });
    if (panelMode === 'share') {
      const people = h('ul', { class: 'people' }, participants.map((p) => h('li', {},
        h('span', { text: `${p.name}${p.userId === me ? ' (you)' : ''} · ${p.role}` }),
        isOwner() && p.role !== 'owner'
          ? h('button', { type: 'button', class: 'small', text: 'Remove', 'aria-label': `Remove ${p.name}`, onclick: () => removeParticipant(p, err) })
          : null)));
      const children = [h('h2', { text: 'People in this chat' }), people];
      if (isOwner()) {
        const email = field({ label: 'Invite by email', name: 'invite', type: 'email', autocomplete: 'off', attrs: { inputmode: 'email', spellcheck: 'false' } });
        email.input.addEventListener('input', () => email.setError(email.input.value ? rules.email(email.input.value) : null));
        const form = h('form', { class: 'inline-form', novalidate: true }, email.wrap, h('button', { type: 'submit', class: 'primary', text: 'Invite' }));
        form.addEventListener('submit', async (e) => {
          e.preventDefault();
          const msg = rules.email(email.input.value);
          email.setError(msg);
          if (msg) return email.input.focus();
          err.textContent = '';
          try {
            const p = await api.post(`chat/sessions/${sessionId}/participants`, { email: email.input.value.trim() });
            participants = participants.filter((x) => x.userId !== p.userId).concat(p);
            announce(`${p.name} can now see this chat.`);
            renderHeader();
            renderPanel();
            panel.querySelector('input')?.focus();
          } catch (e2) {
            if (e2.status === 404) email.setError('No account uses that email address.');
            else if (e2.status === 409) email.setError('That person is already in this chat.');
            else if (e2.code === 'VALIDATION_FAILED') email.setError(rules.fieldErrors(e2.details, ['email']).email ?? e2.plain);
            else err.textContent = e2.plain ?? String(e2);
          }
        });
        children.push(form);
      } else {
        children.push(h('p', { class: 'hint', text: 'Only the owner can invite people.' }));
      }
      children.push(err, h('div', { class: 'panel-buttons' }, h('button', { type: 'button', text: 'Close', onclick: () => togglePanel('share') })));
      panel.replaceChildren(...children);
    } else if (panelMode === 'rename') {
      const t = field({ label: 'Title', name: 'title', value: session?.title ?? '' });
      t.input.addEventListener('input', () => t.setError(rules.title(t.input.value)));
      const form = h('form', { class: 'inline-form', novalidate: true }, t.wrap, h('div', { class: 'panel-buttons' }, h('button', { type: 'submit', class: 'primary', text: 'Save' }), close), err);
      form.addEventListener('submit', async (e) => {
        e.preventDefault();
        const msg = rules.title(t.input.value);
        t.setError(msg);
        if (msg) return t.input.focus();
        try {
          const s = await api.patch(`chat/sessions/${sessionId}`, { title: t.input.value.trim() });
          session = { ...session, ...s };
          state.sessions.upsert(session, { toTop: false });
          changed();
          panelMode = null;
          renderHeader();
          renderPanel();
          announce('Chat renamed.');
          titleEl.focus();
        } catch (e2) {
          if (e2.code === 'VALIDATION_FAILED') t.setError(rules.fieldErrors(e2.details, ['title']).title ?? e2.plain);
          else err.textContent = e2.plain ?? String(e2);
        }
      });
      panel.replaceChildren(form);
      t.input.focus();
      t.input.select();
    } else if (panelMode === 'delete' || panelMode === 'leave') {
      const deleting = panelMode === 'delete';
      const go = h('button', {
        type: 'button', class: 'danger', text: deleting ? 'Delete for everyone' : 'Leave chat',
        onclick: async () => {
          go.disabled = true;
          leaving = true;
          try {
            if (deleting) await api.del(`chat/sessions/${sessionId}`);
            else await api.del(`chat/sessions/${sessionId}/participants/${me}`);
            state.sessions.remove(sessionId);
            changed();
            announce(deleting ? 'Chat deleted.' : 'You left the chat.');
            navigate('/');
          } catch (e2) {
            go.disabled = false;
            leaving = false;
            err.textContent = e2.plain ?? String(e2);
          }
        },
      });
      panel.replaceChildren(
        h('p', { text: deleting ? 'Delete this chat and all its messages for everyone in it? This cannot be undone.' : 'Leave this chat? You will need a new invitation to come back.' }),
        h('div', { class: 'panel-buttons' }, go, close), err);
      go.focus();
    }
  }

  async function removeParticipant(p, err) {
    try {
      await api.del(`chat/sessions/${sessionId}/participants/${p.userId}`);
      participants = participants.filter((x) => x.userId !== p.userId);
      renderHeader();
      renderPanel();
      announce(`${p.name} was removed from this chat.`);
    } catch (e) {
      err.textContent = e.plain ?? String(e);
    }
  }

  // ---------- provider picker ----------
  let providers = [];
  providerSel.disabled = modelInput.disabled = true;
  async function setupPicker() {
    try {
      providers = await loadProviders();
    } catch {
      providers = [];
    }
    if (destroyed) return;
    providerSel.disabled = modelInput.disabled = false;
    providerSel.replaceChildren(...providers.map((p) => h('option', {
      value: p.name,
      text: `${p.name}${p.isDemo ? ' (demo)' : ''}${p.available ? '' : ' (unavailable now)'}`,
    })));
    const chosen = providers.find((p) => p.name === session?.provider) ?? providers.find((p) => p.isDefault) ?? providers[0];
    if (chosen) providerSel.value = chosen.name;
    modelInput.value = session?.model && chosen?.name === session?.provider ? session.model : chosen?.defaultModel ?? '';
    syncModels();
  }
  function syncModels() {
    const p = providers.find((x) => x.name === providerSel.value);
    modelList.replaceChildren(...(p?.models ?? []).map((m) => h('option', { value: m })));
    demoNote.hidden = !p?.isDemo;
  }
  providerSel.addEventListener('change', () => {
    const p = providers.find((x) => x.name === providerSel.value);
    modelInput.value = p?.defaultModel ?? '';
    syncModels();
    rememberPick();
  });
  modelInput.addEventListener('change', rememberPick);
  // The owner's pick becomes the session's default, so it sticks on reload
  // and for the others; a member's pick applies to their own messages.
  async function rememberPick() {
    if (!isOwner()) return;
    try {
      const s = await api.patch(`chat/sessions/${sessionId}`, { provider: providerSel.value || null, model: modelInput.value.trim() || null });
      session = { ...session, ...s };
    } catch (e) {
      composerErr.textContent = e.plain ?? String(e);
    }
  }
  const pick = () => ({
    provider: providerSel.value || undefined,
    model: modelInput.value.trim() || undefined,
  });

  // ---------- message rendering ----------
  function messageEl(m) {
    let entry = elements.get(m.id);
    if (entry && entry.rev === m.rev && entry.status === m.status && entry.pending === !!m.pending && entry.sendError === m.sendError) return entry.el;
    const el = entry?.el ?? h('article', { class: 'msg', dataset: { id: m.id } });
    fillMessage(el, m);
    elements.set(m.id, { el, rev: m.rev, status: m.status, pending: !!m.pending, sendError: m.sendError });
    return el;
  }

  function fillMessage(el, m) {
    const ai = m.role === 'assistant';
    const mine = !ai && m.senderId === me;
    el.className = `msg ${ai ? 'msg-ai' : 'msg-user'}${mine ? ' mine' : ''} status-${m.status}${m.pending ? ' pending' : ''}`;
    el.dataset.id = m.id;
    el.dataset.status = m.status;
    const who = ai ? 'AI' : nameOf(m.senderId);
    const badge = ai && m.provider ? h('span', { class: 'badge', text: m.provider === 'demo' ? 'demo' : `${m.provider}${m.model ? ` · ${m.model}` : ''}` }) : null;
    const head = h('header', { class: 'msg-head' },
      h('span', { class: 'who', text: who }), badge,
      h('time', { datetime: m.createdAt, text: formatTime(m.createdAt, auth.user?.profile?.timezone) }));
    let body;
    if (ai) {
      body = h('div', { class: 'msg-body md' });
      if (m.content) body.append(renderMarkdown(m.content));
      else if (m.status === 'streaming') body.append(h('span', { class: 'thinking', text: 'Thinking…' }));
    } else {
      // Exactly as typed: text, never markup.
      body = h('div', { class: 'msg-body plain' });
      body.textContent = m.content;
    }
    const foot = [];
    if (ai && m.status === 'streaming') foot.push(h('p', { class: 'msg-state', text: 'Writing…' }));
    if (ai && m.status === 'failed') {
      const why = m.error?.message || 'The AI could not answer.';
      foot.push(h('p', { class: 'msg-state error', role: 'note' }, h('strong', { text: 'Reply failed: ' }), why));
      const prompt = list.promptFor(m.id);
      if (prompt) foot.push(h('button', { type: 'button', class: 'small retry', text: 'Retry', onclick: () => send(prompt.content) }));
    }
    if (ai && m.status === 'cancelled') foot.push(h('p', { class: 'msg-state', text: 'Stopped.' }));
    if (m.pending && !m.sendError) foot.push(h('p', { class: 'msg-state', text: 'Sending…' }));
    if (m.pending && m.sendError) {
      foot.push(h('p', { class: 'msg-state error', role: 'note' }, h('strong', { text: 'Not sent: ' }), m.sendError));
      foot.push(h('button', { type: 'button', class: 'small retry', text: 'Retry', onclick: () => retryPending(m) }));
    }
    el.setAttribute('aria-label', ai ? `Reply from the AI${m.status === 'streaming' ? ', still writing' : ''}` : `Message from ${who}`);
    el.replaceChildren(head, body, ...foot);
  }

  // ---------- windowed list ----------
  const distanceFromBottom = () => scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight;

  function queueRender() {
    if (renderQueued || destroyed) return;
    renderQueued = true;
    requestAnimationFrame(() => {
      renderQueued = false;
      render();
    });
  }

  function render() {
    if (destroyed) return;
    const atBottom = stickToBottom;
    // Remember where the first visible message sits, to put it back there.
    let anchor = null;
    if (!atBottom) {
      const top = scroller.getBoundingClientRect().top;
      for (const child of msgs.children) {
        const r = child.getBoundingClientRect();
        if (r.bottom > top) {
          anchor = { id: child.dataset.id, offset: r.top - top };
          break;
        }
      }
    }
    const items = list.items.slice(slice.start, slice.end);
    const want = items.map(messageEl);
    const keep = new Set(want);
    for (const child of [...msgs.children]) if (!keep.has(child)) child.remove();
    let cur = msgs.firstChild;
    for (const node of want) {
      if (cur === node) cur = cur.nextSibling;
      else msgs.insertBefore(node, cur);
    }
    // Detached elements are a cache; keep it bounded too.
    if (elements.size > win.DEFAULTS.max * 4) {
      const live = new Set(items.map((m) => m.id));
      for (const id of elements.keys()) if (!live.has(id)) elements.delete(id);
    }
    topStatus.textContent = slice.start > 0 ? '' : loadingOlder ? 'Loading older messages…' : list.hasOlder ? '' : list.length ? 'This is the beginning of the chat.' : 'No messages yet. Say hello.';
    if (atBottom) {
      scroller.scrollTop = scroller.scrollHeight;
    } else if (anchor) {
      const node = msgs.querySelector(`[data-id="${CSS.escape(anchor.id)}"]`);
      if (node) scroller.scrollTop += node.getBoundingClientRect().top - scroller.getBoundingClientRect().top - anchor.offset;
    }
    latestBtn.hidden = stickToBottom && slice.end >= list.length;
    stopBtn.hidden = !replyInFlight();
  }

  function onScroll() {
    stickToBottom = distanceFromBottom() < BOTTOM_PX && slice.end >= list.length;
    latestBtn.hidden = stickToBottom && slice.end >= list.length;
    if (scroller.scrollTop < EDGE_PX) {
      if (slice.start > 0) {
        slice = win.slideUp(slice);
        render();
      } else if (list.hasOlder && !loadingOlder) {
        loadOlder();
      }
    } else if (distanceFromBottom() < EDGE_PX && slice.end < list.length) {
      slice = win.slideDown(slice, list.length);
      render();
    }
  }
  let scrollQueued = false;
  scroller.addEventListener('scroll', () => {
    if (scrollQueued) return;
    scrollQueued = true;
    requestAnimationFrame(() => {
      scrollQueued = false;
      if (!destroyed) onScroll();
    });
  }, { passive: true });

  function toLatest() {
    slice = win.jumpToLatest(list.length);
    stickToBottom = true;
    render();
    input.focus();
  }

  // Called after anything was added at the newest end.
  function afterAppend(oldLength) {
    slice = win.followAppend(slice, oldLength, list.length, stickToBottom);
    queueRender();
  }

  async function loadOlder() {
    if (loadingOlder || !list.hasOlder) return;
    loadingOlder = true;
    topStatus.textContent = 'Loading older messages…';
    try {
      const page = await api.get(`chat/sessions/${sessionId}/messages${api.qs({ limit: PAGE, cursor: list.olderCursor })}`);
      if (destroyed) return;
      const added = list.addOlderPage(page);
      slice = win.slideUp(win.shiftForPrepend(slice, added));
      stickToBottom = stickToBottom && distanceFromBottom() < BOTTOM_PX;
      render();
    } catch (e) {
      topStatus.textContent = `Could not load older messages: ${e.plain ?? e}`;
    } finally {
      loadingOlder = false;
    }
    // A short history may not fill the screen yet: keep going.
    if (!destroyed && list.hasOlder && scroller.scrollHeight <= scroller.clientHeight + EDGE_PX && slice.start === 0) loadOlder();
  }

  // ---------- live events ----------
  function replyInFlight() {
    if (list.streamingReply()) return true;
    for (const s of sends.values()) if (!s.replied) return true;
    return false;
  }

  function handle(event, data) {
    if (data?.sessionId && data.sessionId !== sessionId && event !== 'message_created') return;
    const oldLength = list.length;
    switch (event) {
      case 'message_created': {
        const msg = data.message;
        if (!msg || msg.sessionId !== sessionId) return;
        const known = list.get(msg.id);
        list.applyCreated(msg);
        if (msg.role === 'user' && msg.clientMessageId && sends.has(msg.clientMessageId)) {
          const s = sends.get(msg.clientMessageId);
          s.userMessageId = msg.id;
          clearTimeout(s.timer);
        }
        if (msg.role === 'assistant') {
          for (const s of sends.values()) if (s.userMessageId) s.replied = true;
        }
        if (!known && msg.role === 'user' && msg.senderId !== me) {
          typers.delete(msg.senderId);
          renderTyping();
          announce(`${nameOf(msg.senderId)}: ${msg.content.slice(0, 300)}`);
        }
        if (!known) {
          state.sessions.touch(sessionId, msg.createdAt);
          changed();
        }
        break;
      }
      case 'message_chunk':
        list.applyChunk(data);
        break;
      case 'message_complete':
      case 'message_failed':
      case 'message_cancelled': {
        const m = list.applyFinal(event, data);
        for (const [cmid, s] of sends) if (s.replied || s.userMessageId) sends.delete(cmid);
        if (m) {
          if (event === 'message_failed') announce(`Reply failed: ${m.error?.message ?? ''}`);
          else if (event === 'message_cancelled') announce('Reply stopped.');
          else announce(`Reply finished: ${m.content.slice(0, 300)}`);
        }
        break;
      }
      default:
        return;
    }
    if (list.length !== oldLength) afterAppend(oldLength);
    else queueRender();
  }

  const wire = (event, fn) => {
    const listener = (e) => fn(e.detail);
    gateway.addEventListener(event, listener);
    cleanups.push(() => gateway.removeEventListener(event, listener));
  };
  for (const event of ['message_created', 'message_chunk', 'message_complete', 'message_failed', 'message_cancelled']) {
    wire(event, ({ data }) => handle(event, data));
  }
  wire('typing', ({ data }) => {
    if (data.sessionId !== sessionId || data.userId === me) return;
    if (data.isTyping) typers.set(data.userId, Date.now() + TYPING_SHOWN_MS);
    else typers.delete(data.userId);
    renderTyping();
  });
  wire('user_joined', ({ data }) => {
    if (data.sessionId === sessionId && !participants.some((p) => p.userId === data.userId)) loadSession();
  });
  // Out of the session without asking: the chat was deleted, or the owner
  // removed us. Its replies in flight will not end here, and nothing sent
  // can succeed: go back to the list and say why.
  wire('left_session', ({ data }) => {
    if (destroyed || leaving || data.sessionId !== sessionId) return;
    state.sessions.remove(sessionId);
    changed();
    navigate('/', { notice: 'That chat is no longer available: it was deleted, or you were removed from it.' });
  });
  wire('joined_session', ({ data }) => {
    if (data.sessionId === sessionId) catchUp();
  });
  wire('error', ({ data, id }) => {
    const s = id && sends.get(id);
    if (s) {
      clearTimeout(s.timer);
      sends.delete(id);
      const details = (data.details ?? []).map((d) => d.message).filter(Boolean).join('; ');
      list.failPending(id, details ? `${data.message} (${details})` : data.message || data.code);
      queueRender();
    }
  });

  // After (re)joining: fetch what we missed, then resume every reply in flight.
  let catchingUp = false;
  async function catchUp() {
    if (catchingUp || destroyed) return;
    catchingUp = true;
    try {
      const page = await api.get(`chat/sessions/${sessionId}/messages${api.qs({ limit: PAGE })}`);
      if (destroyed) return;
      const oldLength = list.length;
      const { overlap } = list.mergeNewest(page);
      if (!overlap) {
        list.reset();
        list.addOlderPage(page);
        slice = win.initialWindow(list.length);
        stickToBottom = true;
        elements.clear();
      } else if (list.length !== oldLength) {
        afterAppend(oldLength);
      }
      for (const req of list.resumeRequests()) gateway.send('resume', req);
      // Sends the server never received go again with the same id (idempotent).
      for (const [cmid, s] of sends) {
        if (!s.userMessageId && list.get(`pending:${cmid}`) && !list.get(`pending:${cmid}`).sendError) deliver(cmid, s.content, true);
      }
      queueRender();
    } catch (e) {
      if (e.status === 404) showGone();
    } finally {
      catchingUp = false;
    }
  }

  // ---------- polling fallback (no live channel) ----------
  const poll = setInterval(async () => {
    if (destroyed || gateway.isLive(sessionId) || list.streams.size === 0 || sseActive > 0) return;
    try {
      const page = await api.get(`chat/sessions/${sessionId}/messages${api.qs({ limit: PAGE })}`);
      const oldLength = list.length;
      list.mergeNewest(page);
      if (list.length !== oldLength) afterAppend(oldLength);
      else queueRender();
    } catch { /* try again next tick */ }
  }, 1500);
  cleanups.push(() => clearInterval(poll));

  // ---------- typing ----------
  let typingSentAt = 0;
  let typingIdle = null;
  function typingActivity() {
    if (!gateway.isLive(sessionId)) return;
    const now = Date.now();
    if (now - typingSentAt > TYPING_SEND_EVERY_MS) {
      typingSentAt = now;
      gateway.send('typing', { sessionId, isTyping: true });
    }
    clearTimeout(typingIdle);
    typingIdle = setTimeout(typingStopped, TYPING_IDLE_MS);
  }
  function typingStopped() {
    clearTimeout(typingIdle);
    if (typingSentAt && gateway.isLive(sessionId)) gateway.send('typing', { sessionId, isTyping: false });
    typingSentAt = 0;
  }
  function renderTyping() {
    const now = Date.now();
    for (const [id, until] of typers) if (until < now) typers.delete(id);
    const names = [...typers.keys()].map(nameOf);
    typingEl.textContent = names.length === 0 ? '' : names.length === 1 ? `${names[0]} is typing…` : `${names.join(', ')} are typing…`;
  }
  const typingTick = setInterval(renderTyping, 1000);
  cleanups.push(() => clearInterval(typingTick), () => clearTimeout(typingIdle));

  // ---------- sending ----------
  function send(content) {
    const err = rules.messageContent(content);
    if (err) {
      composerErr.textContent = err;
      return false;
    }
    composerErr.textContent = '';
    const cmid = newId();
    const oldLength = list.length;
    list.addPending({ clientMessageId: cmid, content, senderId: me });
    stickToBottom = true;
    slice = win.followAppend(win.jumpToLatest(oldLength), oldLength, list.length, true);
    render();
    sends.set(cmid, { content, timer: null, userMessageId: null, replied: false });
    deliver(cmid, content);
    state.sessions.touch(sessionId);
    changed();
    return true;
  }

  function retryPending(m) {
    const cmid = m.clientMessageId;
    delete m.sendError;
    m.rev++;
    sends.set(cmid, { content: m.content, timer: null, userMessageId: null, replied: false });
    queueRender();
    deliver(cmid, m.content);
  }

  function deliver(cmid, content, again = false) {
    const s = sends.get(cmid);
    if (!s) return;
    const { provider, model } = pick();
    if (gateway.isLive(sessionId)) {
      gateway.send('send_message', { sessionId, content, clientMessageId: cmid, provider, model }, cmid);
      clearTimeout(s.timer);
      // No confirmation in time (socket silently lost): check what the server has.
      s.timer = setTimeout(() => { if (!s.userMessageId) catchUp(); }, CONFIRM_WITHIN_MS);
    } else if (!again) {
      sendOverHttp(cmid, content, provider, model);
    }
  }

  let sseActive = 0;
  async function sendOverHttp(cmid, content, provider, model, retried = false) {
    sseActive++;
    try {
      const token = await auth.accessToken();
      const res = await fetch(`${api.API}/chat/sessions/${sessionId}/messages`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', Accept: 'text/event-stream', Authorization: `Bearer ${token}` },
        body: JSON.stringify({ content, clientMessageId: cmid, provider, model }),
      });
      const type = res.headers.get('Content-Type') ?? '';
      if (!res.ok || !type.includes('text/event-stream')) {
        const env = await res.json().catch(() => null);
        if (res.status === 401 && env?.error?.code === 'TOKEN_EXPIRED' && !retried) {
          await auth.refresh();
          sseActive--;
          return sendOverHttp(cmid, content, provider, model, true);
        }
        if (res.ok && env?.success) {
          // An idempotent replay answers with the stored messages as JSON.
          if (env.data.userMessage) handle('message_created', { message: env.data.userMessage });
          if (env.data.aiMessage) {
            handle('message_created', { message: env.data.aiMessage });
            list.applySnapshot(env.data.aiMessage);
          }
          sends.delete(cmid);
          return;
        }
        throw api.toError(res, env);
      }
      const reader = res.body.getReader();
      const decoder = new TextDecoder();
      const parser = new SseParser();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        for (const ev of parser.feed(decoder.decode(value, { stream: true }))) {
          let data;
          try {
            data = JSON.parse(ev.data);
          } catch {
            continue;
          }
          handle(ev.event, data);
        }
        if (destroyed) {
          reader.cancel().catch(() => {});
          break;
        }
      }
    } catch (e) {
      const pending = list.get(`pending:${cmid}`);
      if (pending) {
        const details = (e.details ?? []).map((d) => d.message).filter(Boolean).join('; ');
        list.failPending(cmid, details ? `${e.plain} (${details})` : e.plain ?? 'Could not reach the server.');
        sends.delete(cmid);
        queueRender();
      }
    } finally {
      sseActive--;
      queueRender();
    }
  }

  async function stop() {
    const reply = list.streamingReply();
    let target = reply?.id;
    if (!target) {
      for (const s of sends.values()) if (s.userMessageId) target = s.userMessageId;
    }
    if (!target) return;
    if (gateway.isLive(sessionId)) {
      gateway.send('stop_generation', { sessionId, messageId: target });
    } else {
      try {
        await api.post(`chat/sessions/${sessionId}/messages/${target}/cancel`, {});
      } catch (e) {
        if (e.status !== 409) composerErr.textContent = e.plain ?? String(e);
      }
    }
    input.focus();
  }

  // ---------- composer ----------
  const grow = () => {
    input.style.height = 'auto';
    input.style.height = `${Math.min(input.scrollHeight, 200)}px`;
  };
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && !e.altKey && !e.ctrlKey && !e.metaKey) {
      e.preventDefault();
      composer.requestSubmit();
    } else if (e.key === 'Escape' && replyInFlight()) {
      stop();
    }
  });
  input.addEventListener('input', () => {
    grow();
    if (composerErr.textContent && !rules.messageContent(input.value)) composerErr.textContent = '';
    if (input.value.trim()) typingActivity();
    else typingStopped();
  });
  input.addEventListener('blur', () => typingStopped());
  composer.addEventListener('submit', (e) => {
    e.preventDefault();
    if (send(input.value)) {
      input.value = '';
      grow();
      typingStopped();
    }
    input.focus();
  });

  // ---------- loading ----------
  async function loadSession() {
    try {
      const s = await api.get(`chat/sessions/${sessionId}`);
      if (destroyed) return;
      participants = s.participants ?? [];
      session = s;
      renderHeader();
      if (panelMode) renderPanel();
      queueRender();
    } catch (e) {
      if (e.status === 404) showGone();
    }
  }

  function showGone() {
    if (destroyed) return;
    el.replaceChildren(h('div', { class: 'gone' },
      h('h1', { tabindex: '-1', text: 'This chat is not available' }),
      h('p', { text: 'It was deleted, or you are no longer in it.' }),
      h('a', { href: '/', 'data-link': '', text: 'Back to your chats' })));
    el.querySelector('h1').focus();
    state.sessions.remove(sessionId);
    changed();
  }

  async function start() {
    renderHeader();
    topStatus.textContent = 'Loading messages…';
    // The picker starts from the session's choice, so it waits for both.
    Promise.all([loadSession(), loadProviders().catch(() => [])]).then(() => setupPicker());
    try {
      const page = await api.get(`chat/sessions/${sessionId}/messages${api.qs({ limit: PAGE })}`);
      if (destroyed) return;
      list.addOlderPage(page);
      slice = win.initialWindow(list.length);
      stickToBottom = true;
      render();
    } catch (e) {
      if (e.status === 404) return showGone();
      topStatus.textContent = `Could not load messages: ${e.plain ?? e}`;
      return;
    }
    if (destroyed) return;
    gateway.join(sessionId);
    if (list.hasOlder && scroller.scrollHeight <= scroller.clientHeight + EDGE_PX) loadOlder();
  }

  start();
  if (focusComposer) requestAnimationFrame(() => input.focus());

  return {
    el,
    focusComposer: () => input.focus(),
    destroy() {
      destroyed = true;
      typingStopped();
      gateway.leave(sessionId);
      for (const s of sends.values()) clearTimeout(s.timer);
      for (const c of cleanups) c();
    },
  };
}

export { FINAL };
