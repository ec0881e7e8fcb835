// Backlog Bridge — progressive enhancement only: every page works without this file.
(function () {
  "use strict";

  // Env pickers and other [data-autosubmit] selects submit their form on change.
  document.addEventListener("change", function (event) {
    var el = event.target;
    if (el && el.matches && el.matches("select[data-autosubmit]") && el.form) {
      el.form.submit();
    }
  });

  // Wall-screen refresh: reload every data-refresh seconds while the page is visible and
  // nobody is typing into a form. Hidden tabs catch up as soon as they are shown again.
  var body = document.body;
  var seconds = parseInt(body.getAttribute("data-refresh") || "0", 10);
  if (seconds > 0) {
    var due = Date.now() + seconds * 1000;
    var label = document.querySelector("[data-countdown]");
    var busy = function () {
      var active = document.activeElement;
      return active && /^(INPUT|TEXTAREA)$/.test(active.tagName);
    };
    setInterval(function () {
      var left = Math.max(0, Math.round((due - Date.now()) / 1000));
      if (label) { label.textContent = "refresh in " + left + " s"; }
      if (left === 0 && document.visibilityState === "visible" && !busy()) {
        window.location.reload();
      }
    }, 1000);
  }

  // Timestamps are sent in UTC; show the reader's local time on hover.
  document.querySelectorAll("time[datetime]").forEach(function (el) {
    var when = new Date(el.getAttribute("datetime"));
    if (!isNaN(when.getTime())) { el.title = when.toLocaleString(); }
  });
})();
