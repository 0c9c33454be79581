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
