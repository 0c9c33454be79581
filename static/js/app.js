// Tell the server the reader's time zone, so times show on their own clock.
(function () {
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.indexOf("tz=" + zone) === -1) {
      document.cookie = "tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; samesite=lax";
    }
  } catch (e) { /* older browsers: times stay in UTC */ }
})();

// After htmx swaps a region in, move keyboard focus to it if focus was lost inside it.
document.addEventListener("htmx:afterSwap", function (event) {
  var target = event.detail.target;
  if (target && target.dataset && target.dataset.focusAfterSwap !== undefined &&
      (document.activeElement === document.body || !document.contains(document.activeElement))) {
    target.setAttribute("tabindex", "-1");
    target.focus({ preventScroll: true });
  }
});

// Where a table is narrow, app.css lays its rows out as blocks, and some browsers (Safari) then stop
// reading it as a table. Name each part's role, as the table itself would, for the rows htmx adds too.
(function () {
  var ROLES = [["table.table", "table"], ["thead, tbody, tfoot", "rowgroup"], ["tr", "row"],
               ["th[scope=col]", "columnheader"], ["th[scope=row]", "rowheader"], ["td", "cell"]];
  function tableRoles() {
    document.querySelectorAll("table.table").forEach(function (table) {
      ROLES.forEach(function (pair) {
        (table.matches(pair[0]) ? [table] : table.querySelectorAll(pair[0])).forEach(function (el) {
          if (!el.hasAttribute("role")) el.setAttribute("role", pair[1]);
        });
      });
    });
  }
  document.addEventListener("DOMContentLoaded", tableRoles);
  document.addEventListener("htmx:load", tableRoles);
})();
