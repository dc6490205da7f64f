// Draw every figure the server embedded next to its container (data-chart-for), offline.
(function () {
  // Behaviour and sizes that would otherwise be inline (onchange="", style=""), which the CSP refuses.
  document.querySelectorAll("select[data-submit-on-change]").forEach(function (sel) {
    sel.addEventListener("change", function () { sel.form.submit(); });
  });
  document.querySelectorAll("[data-height]").forEach(function (el) {
    el.style.height = el.getAttribute("data-height") + "px";
  });
  var config = {displaylogo: false, responsive: true,
                modeBarButtonsToRemove: ["lasso2d", "select2d", "autoScale2d"]};
  document.querySelectorAll("script[data-chart-for]").forEach(function (node) {
    var el = document.getElementById(node.getAttribute("data-chart-for"));
    if (!el || typeof Plotly === "undefined") return;
    var fig = JSON.parse(node.textContent);
    Plotly.newPlot(el, fig.data, fig.layout, config).then(function () {
      el.setAttribute("data-rendered", "1");
      // A bar opens the GEX-by-strike profile of its snapshot (a bucket's bar: its last session's close).
      var href = el.getAttribute("data-bar-href");
      if (href) el.on("plotly_click", function (ev) {
        var pt = ev.points.filter(function (p) { return p.data.type === "bar"; })[0];
        if (pt) window.location.href = href + encodeURIComponent(String(pt.x).slice(0, 16).replace(" ", "T"));
      });
    });
  });
  // Wall lines on and off (traces marked meta "wall"); the legend toggles them one by one as well.
  document.querySelectorAll("input[data-walls-toggle]").forEach(function (box) {
    box.addEventListener("change", function () {
      var el = document.getElementById(box.getAttribute("data-walls-toggle"));
      var idx = [];
      el.data.forEach(function (t, i) { if (t.meta === "wall") idx.push(i); });
      Plotly.restyle(el, {visible: box.checked ? true : "legendonly"}, idx);
    });
  });
})();
