// Tell the server the reader's time zone, so times show on their own clock.
(function () {
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.indexOf("tz=" + zone) === -1) {
      document.cookie = "tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; samesite=lax";
    }
  } catch (e) { /* older browsers: times stay in UTC */ }
})();

// The Content-Security-Policy allows no style="" attribute in the markup (docs/operations.md), so a
// bar's length and a chart label's place come as numbers, in per cent, in data-width, data-top and
// data-left, and are set here through the element's style object, which the policy allows. Only
// these three properties, and only numbers from 0 to 100: nothing else in the markup becomes a style.
(function () {
  var PLACED = [["width", "width"], ["top", "top"], ["left", "left"]];
  function place(root) {
    PLACED.forEach(function (pair) {
      var attribute = "data-" + pair[0];
      var found = Array.prototype.slice.call(root.querySelectorAll("[" + attribute + "]"));
      if (root.hasAttribute && root.hasAttribute(attribute)) found.push(root);
      found.forEach(function (element) {
        var value = parseFloat(element.getAttribute(attribute));
        if (isFinite(value)) element.style[pair[1]] = Math.max(0, Math.min(100, value)) + "%";
      });
    });
  }
  place(document);
  document.addEventListener("htmx:load", function (event) { place(event.detail.elt); });
})();

// A region that polls (hx-trigger="every …") with data-poll-while-visible skips its turn while the tab
// is hidden. Said here rather than as a trigger filter ([document.visibilityState === 'visible']),
// which htmx would have to eval: the policy allows no eval, and htmx's allowEval is off.
document.addEventListener("htmx:beforeRequest", function (event) {
  var element = event.detail.elt;
  if (document.visibilityState !== "visible" && element && element.hasAttribute("data-poll-while-visible")) {
    event.preventDefault();
  }
});

// A <select data-submit-on-change> sends its form as soon as a choice is made (the workspace switcher);
// without this script, the form's own button (in <noscript>) does.
document.addEventListener("change", function (event) {
  var select = event.target;
  if (select.matches && select.matches("select[data-submit-on-change]") && select.form) select.form.submit();
});

// After htmx swaps a region in, move keyboard focus to it if focus was lost inside it.
document.addEventListener("htmx:afterSwap", function (event) {
  var target = event.detail.target;
  if (target && target.dataset && target.dataset.focusAfterSwap !== undefined &&
      (document.activeElement === document.body || !document.contains(document.activeElement))) {
    target.setAttribute("tabindex", "-1");
    target.focus({ preventScroll: true });
  }
});

// Copy buttons (data-copy="<id of the element holding the text>"): hidden in the markup, shown
// only where this script runs. The clipboard API needs a secure context and the page's focus;
// where it fails, the text is selected for the reader to copy themselves. The outcome is said in
// the nearest [data-copy-status] (aria-live), for screen readers too.
(function () {
  function reveal(root) {
    root.querySelectorAll("button[data-copy][hidden]").forEach(function (button) { button.hidden = false; });
  }
  reveal(document);
  document.addEventListener("htmx:load", function (event) { reveal(event.detail.elt); });

  function select(element) {
    var range = document.createRange();
    range.selectNodeContents(element);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("button[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.dataset.copy);
    if (!source) return;
    var box = button.closest("section, .card, form") || document;
    var status = box.querySelector("[data-copy-status]");
    var say = function (text) { if (status) status.textContent = text; };
    var text = source.textContent.trim();
    var fallback = function () {
      select(source);
      var copied = false;
      try { copied = document.execCommand("copy"); } catch (e) { copied = false; }
      say(copied ? "Copied to the clipboard." : "Selected: press Ctrl+C (⌘C on a Mac) to copy it.");
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { say("Copied to the clipboard."); }, fallback);
    } else {
      fallback();
    }
  });

  // A secret shown once must not come back with the back button: the back/forward cache would
  // restore the page as it was left, so the box goes before the page is put away.
  window.addEventListener("pagehide", function () {
    document.querySelectorAll("[data-secret-once]").forEach(function (element) { element.remove(); });
  });
})();

// The usage chart: a day's figures in words under the chart as a day is pointed at, tapped or
// focused (its aria-label, which screen readers read on focus); the arrow keys, Home and End move
// between days, of which only one is in the tab order. Listened for on the document, so a chart
// swapped in by htmx works the same.
(function () {
  function dayOf(target) {
    return target && target.closest ? target.closest(".chart .day") : null;
  }
  function show(day) {
    var figure = day.closest(".chart");
    var readout = figure.querySelector("[data-chart-readout]");
    var current = figure.querySelector(".day.current");
    if (current) current.classList.remove("current");
    day.classList.add("current");
    if (readout) readout.textContent = day.getAttribute("aria-label");
  }
  document.addEventListener("focusin", function (event) {
    var day = dayOf(event.target);
    if (day) show(day);
  });
  document.addEventListener("mouseover", function (event) {
    var day = dayOf(event.target);
    if (day) show(day);
  });
  document.addEventListener("keydown", function (event) {
    var day = dayOf(event.target);
    if (!day) return;
    var days = Array.prototype.slice.call(day.parentNode.querySelectorAll(".day"));
    var at = days.indexOf(day);
    var to = {ArrowLeft: at - 1, ArrowRight: at + 1, Home: 0, End: days.length - 1}[event.key];
    if (to === undefined) return;
    event.preventDefault();
    to = Math.max(0, Math.min(days.length - 1, to));
    day.setAttribute("tabindex", "-1");
    days[to].setAttribute("tabindex", "0");
    days[to].focus();
  });
})();

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
