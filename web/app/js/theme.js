// Applied before the first paint (a classic, blocking script) so a dark
// theme does not flash light on load. The profile is the source of truth;
// localStorage only remembers the last choice for this early moment.
(function () {
  try {
    var t = localStorage.getItem('specgen.theme');
    if (t === 'light' || t === 'dark') document.documentElement.dataset.theme = t;
  } catch (e) { /* storage disabled: follow the system */ }
})();
