// ferry dashboard: follow the daemon's event stream and tell htmx to refresh the live
// parts of the page (elements with hx-trigger="ferry-event from:body"). Pages read
// fine without this script; it only makes them live.
(function () {
  "use strict";
  // A polled part (data-live-poll) is not re-fetched while someone is typing in it: a
  // field with focus or with text typed would be swapped away.
  document.addEventListener("htmx:beforeRequest", function (e) {
    var elt = e.detail && e.detail.elt;
    if (!elt || !elt.hasAttribute || !elt.hasAttribute("data-live-poll")) return;
    var busy = Array.prototype.some.call(elt.querySelectorAll("input, select"), function (i) {
      return i === document.activeElement || (i.type === "text" && i.value !== i.defaultValue);
    });
    if (busy) e.preventDefault();
  });
})();
(function () {
  "use strict";
  if (!window.EventSource) return;
  var names = ["change_detected", "job_started", "job_progress", "job_finished",
    "job_failed", "conduit_paused", "conduit_resumed", "conduit_added",
    "conduit_removed", "conduit_changed", "watch_fallback", "files_dehydrated"];
  var es = new EventSource("/events");
  function mark(text, state) {
    var el = document.getElementById("live");
    if (el) { el.textContent = text; el.dataset.state = state; }
  }
  es.onopen = function () { mark("live", "on"); };
  es.onerror = function () { mark("reconnecting…", "off"); };
  names.forEach(function (n) {
    es.addEventListener(n, function () {
      if (window.htmx) window.htmx.trigger(document.body, "ferry-event");
    });
  });
  // hx-boost swaps the body: put the indicator back.
  document.addEventListener("htmx:afterSettle", function () {
    if (es.readyState === 1) mark("live", "on");
  });
})();
