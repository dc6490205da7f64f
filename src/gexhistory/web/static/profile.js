// /gex/profile: GEX by strike, by expiry bucket and across spots for one snapshot, and a replay through
// the stored sessions that fetches /api/gex/profile and redraws in place (no page load).
(function () {
  var boot = JSON.parse(document.getElementById("profile-boot").textContent);
  var steps = boot.steps, idx = boot.index, cur = boot.data, symbol = boot.symbol;
  var config = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["lasso2d", "select2d", "autoScale2d"]};
  var C = {call: "#22c55e", put: "#ef4444", spot: "#e5e7eb", flip: "#a78bfa", callWall: "#38bdf8",
           putWall: "#fb923c", grid: "#1e2733", text: "#9aa7b4", bg: "#131a23"};
  var REGIME = {POSITIVE: "#22c55e", NEGATIVE: "#ef4444", NEUTRAL: "#eab308"};
  var BUCKET = {"0DTE": "#f472b6", "this week": "#fbbf24", "monthly": "#60a5fa", "other": "#94a3b8"};
  var strikesEl = document.getElementById("chart-strikes"), curveEl = document.getElementById("chart-curve");
  var slider = document.querySelector("[data-slider]"), rangeSel = document.querySelector("[data-strike-range]");
  var byBucket = document.querySelector("[data-by-bucket]"), playBtn = document.querySelector("[data-play]");

  // The same formats as web/format.py (money_short, price), so a redrawn card reads as a served one.
  function num(v, d) { return v.toLocaleString("en-US", {minimumFractionDigits: d, maximumFractionDigits: d}); }
  function money(v) {
    if (v === null || v === undefined || !isFinite(v)) return "—";
    var a = Math.abs(v), sign = v < 0 ? "-" : "", units = [[1e12, "T"], [1e9, "B"], [1e6, "M"], [1e3, "K"]];
    for (var i = 0; i < units.length; i++) if (a >= units[i][0]) return sign + "$" + num(a / units[i][0], 2) + units[i][1];
    return sign + "$" + num(a, 2);
  }
  function price(v) { return (v === null || v === undefined || !isFinite(v)) ? "—" : "$" + num(v, 2); }
  function pill(cls, v) { return v ? '<span class="pill ' + cls + "-" + v.toLowerCase() + '">' + v + "</span>" : "—"; }
  var FMT = {gex: money, price: price, regime: function (v) { return pill("r", v); }, mm: function (v) { return pill("mm", v); }};

  function layout(extra) {
    var base = {paper_bgcolor: C.bg, plot_bgcolor: C.bg, font: {color: C.text, size: 11}, hovermode: "x unified",
                // Room above the plot for two rows of line labels under the legend.
                margin: {l: 64, r: 24, t: 72, b: 40}, legend: {orientation: "h", x: 0, y: 1.2, yanchor: "bottom"},
                hoverlabel: {bgcolor: "#111827", bordercolor: "#374151", font: {color: "#e5e7eb"}},
                xaxis: {gridcolor: C.grid, zeroline: false}, yaxis: {gridcolor: C.grid, zerolinecolor: "#4b5563",
                tickprefix: "$", ticksuffix: "B", tickformat: "~g"}};
    for (var k in extra) base[k] = extra[k];
    return base;
  }
  function vline(x, color, dash, label, side, row) {
    if (x === null || x === undefined) return [[], []];
    // row 1 puts the label a line higher, so the flip's and spot's labels do not print over each other.
    return [[{type: "line", xref: "x", yref: "paper", x0: x, x1: x, y0: 0, y1: 1, line: {color: color, width: 1.2, dash: dash}}],
            [{x: x, y: 1, yshift: row ? 13 : 0, xref: "x", yref: "paper", text: label, showarrow: false, yanchor: "bottom",
              xanchor: side || "center", font: {size: 10, color: color}}]];
  }
  function markers(d) {
    var shapes = [], notes = [];
    // Labels of lines that may sit on neighbouring strikes lean apart: below spot to the left, above to the right.
    [[d.spot_price, C.spot, "solid", "spot", "center"], [d.flip_point, C.flip, "dash", "flip", lean(d.flip_point, d.spot_price), 1],
     [d.call_wall, C.callWall, "dot", "call wall", lean(d.call_wall, d.spot_price)],
     [d.put_wall, C.putWall, "dot", "put wall", lean(d.put_wall, d.spot_price)]].forEach(function (m) {
      var v = vline(m[0], m[1], m[2], m[3], m[4], m[5]);
      shapes = shapes.concat(v[0]); notes = notes.concat(v[1]);
    });
    return [shapes, notes];
  }
  function b(v) { return v === null ? null : v / 1e9; }
  function lean(x, from) { return x !== null && x < from ? "right" : "left"; }

  // Strikes within +-pct of spot (the API sends +-20%).
  function window_(d) {
    var pct = +rangeSel.value / 100, lo = d.spot_price * (1 - pct), hi = d.spot_price * (1 + pct), keep = [];
    d.strikes.strike.forEach(function (k, i) { if (k >= lo && k <= hi) keep.push(i); });
    return keep;
  }
  function pick(arr, keep) { return keep.map(function (i) { return arr[i]; }); }

  function strikeFigure(d) {
    var keep = window_(d), x = pick(d.strikes.strike, keep), data = [];
    if (byBucket.checked) {
      // Net GEX per strike of each expiry bucket, stacked: the buckets add up to the strike's net.
      d.buckets.forEach(function (bk) {
        data.push({type: "bar", name: bk.bucket, x: x, y: pick(bk.net_gex, keep).map(b), marker: {color: BUCKET[bk.bucket]},
                   hovertemplate: bk.bucket + " %{y:$.3f}B<extra></extra>"});
      });
    } else {
      data.push({type: "bar", name: "Call GEX", x: x, y: pick(d.strikes.call_gex, keep).map(b), marker: {color: C.call},
                 hovertemplate: "calls %{y:$.3f}B<extra></extra>"});
      data.push({type: "bar", name: "Put GEX", x: x, y: pick(d.strikes.put_gex, keep).map(b), marker: {color: C.put},
                 hovertemplate: "puts %{y:$.3f}B<extra></extra>"});
    }
    var m = markers(d);
    return {data: data, layout: layout({barmode: "relative", bargap: 0.1, shapes: m[0], annotations: m[1],
      xaxis: {gridcolor: C.grid, zeroline: false, title: {text: "strike"}, tickprefix: "$"}})};
  }

  function curveFigure(d) {
    var data = [{type: "scatter", mode: "lines", name: "Net GEX", x: d.curve.spot, y: d.curve.net_gex.map(b),
                 line: {color: C.spot, width: 1.8}, hovertemplate: "spot $%{x:.2f}: %{y:$.2f}B<extra></extra>"},
                {type: "scatter", mode: "markers", name: "at spot (stored)", x: [d.spot_price], y: [b(d.net_gex)],
                 marker: {color: REGIME[d.regime] || C.spot, size: 9}, hovertemplate: "spot: %{y:$.2f}B<extra></extra>"}];
    if (d.flip_point !== null) {
      data.push({type: "scatter", mode: "markers", name: "flip", x: [d.flip_point], y: [0],
                 marker: {color: C.flip, size: 10, symbol: "diamond"}, hovertemplate: "flip $%{x:.2f}<extra></extra>"});
    }
    var flipSide = lean(d.flip_point, d.spot_price);
    var s = vline(d.spot_price, C.spot, "dot", "spot", flipSide === "right" ? "left" : "right"),
        f = vline(d.flip_point, C.flip, "dash", "flip", flipSide, 1);
    return {data: data, layout: layout({hovermode: "closest", shapes: s[0].concat(f[0]), annotations: s[1].concat(f[1]),
      legend: {orientation: "h", x: 1, xanchor: "right", y: 1.2, yanchor: "bottom"},
      xaxis: {gridcolor: C.grid, zeroline: false, title: {text: "hypothetical spot"}, tickprefix: "$"},
      yaxis: {gridcolor: C.grid, zeroline: true, zerolinecolor: "#6b7280", tickprefix: "$", ticksuffix: "B", tickformat: "~g"}})};
  }

  function fillCards(d) {
    document.querySelectorAll("[data-field]").forEach(function (el) {
      var key = el.getAttribute("data-field"), f = FMT[el.getAttribute("data-fmt")];
      if (key === "chain_note") {
        el.textContent = d.modelled ? "modelled from the price path, rebuilt as the backfill built it" : "imported option chain (option_chains)";
      } else if (key === "strike_note") {
        return;
      } else if (key in d) {
        if (f === FMT.regime || f === FMT.mm) el.innerHTML = f(d[key]);
        else el.textContent = f ? f(d[key]) : d[key];
        if (el.hasAttribute("title")) el.title = d[key];
      }
    });
    var at = document.querySelector('form.controls input[name="at"]');
    if (at) at.value = d.timestamp;
  }

  function fillBuckets(d) {
    var body = document.querySelector("[data-buckets]"), total = 0;
    var rows = d.buckets.map(function (bk) {
      var net = bk.net_gex.reduce(function (s, v) { return s + v; }, 0);
      total += net;
      return '<tr data-bucket="' + bk.bucket + '"><td><span class="swatch" data-color="' + BUCKET[bk.bucket] + '"></span>' +
             bk.bucket + '</td><td class="r mono" data-col="net">' + money(net) + "</td></tr>";
    });
    rows.push('<tr data-bucket="total"><td>all expiries</td><td class="r mono" data-col="net">' + money(total) + "</td></tr>");
    body.innerHTML = rows.join("");
    // Colours set through the style object: the CSP refuses inline style="" attributes.
    body.querySelectorAll(".swatch[data-color]").forEach(function (sw) {
      sw.style.background = sw.getAttribute("data-color");
    });
  }

  function draw(d) {
    fillCards(d);
    fillBuckets(d);
    slider.value = idx;
    var a = strikeFigure(d), c = curveFigure(d);
    return Promise.all([Plotly.react(strikesEl, a.data, a.layout, config), Plotly.react(curveEl, c.data, c.layout, config)])
      .then(function () {
        strikesEl.setAttribute("data-rendered", "1");
        curveEl.setAttribute("data-rendered", "1");
        document.body.setAttribute("data-profile-at", d.timestamp);
      });
  }

  var loading = 0;
  function go(i) {
    i = Math.max(0, Math.min(steps.length - 1, i));
    if (i === idx && cur.timestamp === steps[i][0]) return Promise.resolve();
    idx = i;
    slider.value = i;
    var ts = steps[i][0], ticket = ++loading;
    document.querySelector('[data-testid="profile-at"]').textContent = ts + " …";
    return fetch("/api/gex/profile?symbol=" + encodeURIComponent(symbol) + "&at=" + encodeURIComponent(ts))
      .then(function (r) { return r.json(); })
      .then(function (body) {
        if (ticket !== loading) return;  // a later step was asked for meanwhile
        if (!body.success) { document.querySelector('[data-testid="profile-at"]').textContent = body.detail; return; }
        cur = body.data;
        var url = new URL(window.location.href);
        url.searchParams.set("at", cur.timestamp.slice(0, 16).replace(" ", "T"));
        history.replaceState(null, "", url);
        return draw(cur);
      });
  }

  var timer = null;
  function stop() { if (timer) clearTimeout(timer); timer = null; playBtn.textContent = "▶ play"; }
  function tick() {
    if (idx >= steps.length - 1) { stop(); return; }
    go(idx + 1).then(function () { if (timer) timer = setTimeout(tick, 600); });
  }
  playBtn.addEventListener("click", function () {
    if (timer) { stop(); return; }
    playBtn.textContent = "❚❚ pause";
    timer = setTimeout(tick, 0);
  });
  document.querySelectorAll("[data-step]").forEach(function (btn) {
    btn.addEventListener("click", function () { stop(); go(idx + +btn.getAttribute("data-step")); });
  });
  slider.max = steps.length - 1;
  slider.addEventListener("input", function () { stop(); go(+slider.value); });
  document.addEventListener("keydown", function (e) {
    if (e.target === slider || e.target.tagName === "SELECT" || e.target.tagName === "INPUT") return;  // their own keys
    if (e.key === "ArrowLeft" || e.key === "ArrowRight") {
      e.preventDefault();
      stop();
      go(idx + (e.key === "ArrowRight" ? 1 : -1));
    }
  });
  rangeSel.addEventListener("change", function () { draw(cur); });
  byBucket.addEventListener("change", function () { draw(cur); });
  draw(cur);
})();
