// State shared by the views of a signed-in person: the session list and
// the AI providers. Reset on sign-out.

import { SessionList } from './lib/pages.js';
import * as api from './api.js';

export const state = {
  sessions: new SessionList(),
  providers: null,
  loadingSessions: null,
};

export function resetState() {
  state.sessions = new SessionList();
  state.providers = null;
  state.loadingSessions = null;
}

/** The next page of sessions (one request at a time). */
export function loadMoreSessions() {
  if (state.loadingSessions) return state.loadingSessions;
  const list = state.sessions;
  if (!list.hasMore) return Promise.resolve();
  state.loadingSessions = api
    .get(`chat/sessions${api.qs({ limit: 30, cursor: list.nextCursor })}`)
    .then((page) => {
      if (list === state.sessions) list.addPage(page);
    })
    .finally(() => {
      // Cleared before listeners run, so they do not see a load in progress.
      state.loadingSessions = null;
      changed();
    });
  return state.loadingSessions;
}

export async function loadProviders() {
  if (!state.providers) state.providers = await api.get('ai/providers');
  return state.providers;
}

const listeners = new Set();
export function onChange(fn) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}
export function changed() {
  for (const fn of listeners) fn();
}
