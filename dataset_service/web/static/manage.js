// Data management pages: build and indexing progress that updates by itself, and the live count of the
// studies and subjects a catalogue query selects. Plain DOM, same origin, the page's own login cookie.
(function () {
  "use strict";
  var live = document.getElementById("live");
  if (live && live.dataset.poll) {
    var watch = live.dataset.watch;
    var tick = function () {
      fetch(live.dataset.poll, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (p) {
          if (!p) { return; }
          if (watch === "indexing") {
            if (!p.indexing) { window.location.reload(); return; }
          } else {
            var still = {};
            p.building.forEach(function (b) {
              still[b.id] = true;
              var bar = document.querySelector('progress[data-progress="' + b.id + '"]');
              var phase = document.querySelector('[data-phase="' + b.id + '"]');
              if (bar) { bar.value = b.percent; bar.textContent = b.percent + "%"; }
              if (phase) { phase.textContent = (b.phase || "") + (b.total ? " · " + b.done + "/" + b.total : ""); }
            });
            var ended = Array.prototype.some.call(document.querySelectorAll("tr[data-building]"),
              function (tr) { return !still[tr.dataset.dataset]; });
            if (ended) { window.location.reload(); return; }
          }
          window.setTimeout(tick, 1500);
        })
        .catch(function () { window.setTimeout(tick, 5000); });
    };
    window.setTimeout(tick, 1000);
  }

  var count = document.getElementById("count");
  var form = document.getElementById("count-form");
  if (count && form) {
    var timer = null;
    var update = function () {
      var q = new URLSearchParams();
      form.querySelectorAll("[data-filter]").forEach(function (el) {
        if (el.value) { q.set(el.dataset.filter, el.value); }
        var mirror = document.querySelector('[data-mirror="' + el.dataset.filter + '"]');
        if (mirror) { mirror.value = el.value; }
      });
      fetch(count.dataset.url + "?" + q.toString(), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (c) {
          count.textContent = "";
          if (c.error) {
            var e = document.createElement("span");
            e.className = "error-text"; e.id = "count-error"; e.textContent = c.error;
            count.appendChild(e);
            return;
          }
          var parts = ["These filters select ", c.studies, " studies of ", c.subjects, " subjects"];
          var b1 = document.createElement("b"); b1.id = "n-studies"; b1.textContent = c.studies;
          var b2 = document.createElement("b"); b2.id = "n-subjects"; b2.textContent = c.subjects;
          count.append(parts[0], b1, parts[2], b2, parts[4]);
          if (c.left_out) { count.append(" (" + c.left_out + " unsafe study(ies) left out)"); }
          if (c.too_many) { count.append(": more than the " + c.max + " a dataset may hold"); }
          count.append(".");
        })
        .catch(function () { count.textContent = "The count cannot be shown right now."; });
    };
    form.querySelectorAll("[data-filter]").forEach(function (el) {
      el.addEventListener("input", function () { window.clearTimeout(timer); timer = window.setTimeout(update, 250); });
    });
  }
})();
