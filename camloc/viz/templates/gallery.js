
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("data").textContent);
  var items = data.items, rows = data.rows, shown = 0, current = [];
  var grid = document.getElementById("grid"), more = document.getElementById("more");
  var classSel = document.getElementById("class"), text = document.getElementById("text");
  var sortSel = document.getElementById("sort"), outcome = document.getElementById("outcome");
  var count = document.getElementById("count");
  var collator = new Intl.Collator(undefined, {numeric: true});
  function el(tag, cls, txt) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (txt !== undefined) e.textContent = txt;
    return e;
  }
  function key(it) { return it.c !== undefined ? String(it.c) : "label:" + it.l; }
  function tail(s, n) { return s.length > n ? "\u2026" + s.slice(s.length - n + 1) : s; }
  var classes = {};
  items.forEach(function (it, i) {
    it.i = i;
    it.low = (it.n + "\n" + it.l + "\n" + (it.p || "")).toLowerCase();
    var k = key(it);
    if (!classes[k]) classes[k] = {label: it.l, c: it.c, count: 0};
    classes[k].count++;
  });
  Object.keys(classes).sort(function (a, b) {
    return classes[b].count - classes[a].count || collator.compare(classes[a].label, classes[b].label);
  }).forEach(function (k) {
    var c = classes[k], o = el("option", null, c.label + (c.c !== undefined ? " (" + c.c + ")" : "") + " \u00b7 " + c.count);
    o.value = k;
    classSel.appendChild(o);
  });
  function card(it) {
    var d = el("article", "card");
    d.dataset.index = it.i;
    d.dataset.cls = key(it);
    var pic = el("div", "pic");
    if (it.t) {
      var img = el("img");
      img.src = it.t;
      img.alt = it.n;
      img.loading = "lazy";
      if (it.o) { var a = el("a"); a.href = it.o; a.title = "open the full picture"; a.appendChild(img); pic.appendChild(a); }
      else pic.appendChild(img);
    } else pic.appendChild(el("span", "nopic", data.noPicture));
    d.appendChild(pic);
    var info = el("div", "info");
    var lab = el("div", "label", it.l);
    if (it.c !== undefined) lab.appendChild(el("span", "cls", " (" + it.c + ")"));
    info.appendChild(lab);
    if (it.p !== undefined) info.appendChild(el("div", "pred", "predicted: " + it.p));
    var nums = [];
    if (it.s !== undefined) nums.push("score " + it.s.toFixed(3));
    if (it.b) nums.push("box [" + it.b.map(function (v) { return v.toFixed(1); }).join(", ") + "]");
    if (nums.length) info.appendChild(el("div", "nums", nums.join(" \u00b7 ")));
    if (it.r) {
      var where = it.m === "full" ? "the whole image" : "center crop [" + it.r.map(function (v) { return v.toFixed(1); }).join(", ") + "]";
      info.appendChild(el("div", "seen", "model saw " + where));
    }
    if (it.h) {
      var tags = el("div", "tags");
      it.h.forEach(function (h, r) {
        var t = el("span", "rowtag");
        var sw = el("span", "sw"); sw.style.background = rows[r].colour; t.appendChild(sw);
        t.appendChild(el("span", null, rows[r].name));
        var word = h[0] === true ? "hit" : h[0] === false ? "miss" : "n/a";
        t.appendChild(el("span", word === "n/a" ? null : word, (h[0] === true ? "\u2713 " : h[0] === false ? "\u2717 " : "") + word));
        if (h[1] !== null && h[1] !== undefined) t.appendChild(el("span", null, "IoU " + h[1].toFixed(3)));
        tags.appendChild(t);
      });
      info.appendChild(tags);
    }
    var name = el("div", "name", tail(it.n, 90));
    name.title = it.n;
    info.appendChild(name);
    d.appendChild(info);
    return d;
  }
  function score(it) { return it.s === undefined ? -Infinity : it.s; }
  function update() {
    var t0 = performance.now();
    var k = classSel.value, q = text.value.trim().toLowerCase(), oc = outcome ? outcome.value : "";
    var want = null, row = -1;
    if (oc) { want = oc.split(":")[0] === "hit"; row = +oc.split(":")[1]; }
    current = items.filter(function (it) {
      return (!k || key(it) === k) && (!q || it.low.indexOf(q) >= 0) && (row < 0 || it.h[row][0] === want);
    });
    var s = sortSel.value;
    current.sort(function (a, b) {
      if (s === "score-desc") return score(b) - score(a) || a.i - b.i;
      if (s === "score-asc") return score(a) - score(b) || a.i - b.i;
      var c = collator.compare(a.n, b.n);
      return (s === "name-asc" ? c : -c) || a.i - b.i;
    });
    grid.textContent = "";
    shown = 0;
    page();
    window.galleryTimings = {update: performance.now() - t0};
  }
  function page() {
    var frag = document.createDocumentFragment(), end = Math.min(current.length, shown + data.pageSize);
    for (var i = shown; i < end; i++) frag.appendChild(card(current[i]));
    grid.appendChild(frag);
    shown = end;
    count.textContent = "showing " + shown + " of " + current.length + (current.length !== items.length ? " matching (" + items.length + " in all)" : "");
    more.hidden = shown >= current.length;
    more.textContent = "Show " + Math.min(data.pageSize, current.length - shown) + " more";
  }
  var errBody = document.getElementById("error-rows");
  data.errors.forEach(function (e) {
    var tr = el("tr");
    tr.appendChild(el("td", null, e.n));
    tr.appendChild(el("td", null, e.r));
    errBody.appendChild(tr);
  });
  if (data.errors.length) {
    var sec = document.getElementById("errors");
    sec.hidden = false;
    sec.querySelector("h2").textContent = "Failed inputs (" + data.errors.length + ")";
    sec.querySelector("details").open = data.errors.length <= 20;
  }
  [classSel, sortSel, outcome].forEach(function (e) { if (e) e.addEventListener("change", update); });
  text.addEventListener("input", update);
  more.addEventListener("click", page);
  update();
  document.body.dataset.ready = "1";
})();
