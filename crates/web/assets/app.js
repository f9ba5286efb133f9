// slicelab web: a little progressive enhancement; every page works without it.
(function () {
  // Ask before destructive actions (forms marked data-confirm).
  document.addEventListener("submit", function (e) {
    var msg = e.target.getAttribute("data-confirm");
    if (msg && !window.confirm(msg)) { e.preventDefault(); }
  });
  // Pages marked data-refresh reload themselves (sliver states, mission control), unless the
  // person is typing into a form.
  var secs = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (secs > 0) {
    setInterval(function () {
      var a = document.activeElement;
      if (a && (a.tagName === "INPUT" || a.tagName === "TEXTAREA" || a.tagName === "SELECT")) { return; }
      window.location.reload();
    }, secs * 1000);
  }
  // Show chart values on hover.
  document.querySelectorAll("svg.chart circle[data-v]").forEach(function (c) {
    c.addEventListener("mouseenter", function () { c.setAttribute("r", "4"); });
    c.addEventListener("mouseleave", function () { c.setAttribute("r", "2.5"); });
  });
})();
