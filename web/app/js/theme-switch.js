// Light, dark, or whatever the device prefers. The choice lives in the
// profile (preferences.theme); localStorage keeps a copy for theme.js.

export function applyTheme(theme) {
  const root = document.documentElement;
  if (theme === 'light' || theme === 'dark') root.dataset.theme = theme;
  else delete root.dataset.theme;
  try {
    if (theme === 'light' || theme === 'dark') localStorage.setItem('specgen.theme', theme);
    else localStorage.removeItem('specgen.theme');
  } catch { /* storage disabled */ }
}

export function themeFromUser(user) {
  return user?.profile?.preferences?.theme ?? 'system';
}
