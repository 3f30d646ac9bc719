// Reconnect delays for the WebSocket: exponential with full jitter, capped,
// so a restarted server is not hit by every client at the same instant.

export function reconnectDelayMs(attempt, { base = 500, cap = 15000, random = Math.random } = {}) {
  const ceiling = Math.min(cap, base * 2 ** Math.max(0, attempt));
  // Half fixed, half random: never zero, never above the ceiling.
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}
