// Herald console: progressive enhancement only; every page works without it (docs/console.md).
// Loaded from /console/static (Content-Security-Policy: script-src 'self'; no inline script anywhere).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Confirm bulk actions.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
  // Show times in the browser's time zone as a tooltip; the text stays UTC.
  document.querySelectorAll("time[datetime]").forEach(function (node) {
    var date = new Date(node.getAttribute("datetime"));
    if (!isNaN(date.getTime())) { node.title = date.toLocaleString(); }
  });
  // Disable a submit button once pressed, so a double click does not re-drive twice.
  document.querySelectorAll("form[method=post]").forEach(function (form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector("button[type=submit]");
      if (button) { setTimeout(function () { button.disabled = true; }, 0); }
    });
  });
  // The overview refreshes itself every 30 s while visible.
  if (document.querySelector(".figures") && !document.hidden) {
    setTimeout(function () { if (!document.hidden) { window.location.reload(); } }, 30000);
  }
});
