/* insitu-workspace: a JupyterLab 4 federated extension written by hand (plain JS, no build step).
 *
 * JupyterLab loads this script, calls init(shareScope) with its shared modules, then
 * get("./extension") and calls the factory: {default: [plugins]}. The plugins use the
 * shared @jupyterlab/apputils, @jupyterlab/filebrowser and @lumino/widgets of the page.
 *
 *  - insitu-workspace:notice   polls {base}insitu/notice; when the platform is about to stop the
 *                              workspace (grant revoked or expired) it saves every open document
 *                              and shows a notification that says what happens and why.
 *  - insitu-workspace:export   "Request export…" in the file browser's context menu (several files),
 *                              writes an export draft ({base}insitu/exports) and opens the exports
 *                              panel, which lists the drafts with links to submit and follow them.
 *                              While it is open the panel follows each draft's request every few
 *                              seconds (not submitted, in review, approved, rejected, returned): it
 *                              asks status_url ({base}insitu/export-status), on this page's own origin,
 *                              which the workspace gateway answers itself outside the sandbox (it asks
 *                              the airlock for the owner: hub/gateway_exports.py), in every mode, per-user
 *                              subdomains included; the workspace itself never reaches the airlock. When
 *                              the states cannot be had (airlock down) the panel says so in one line and
 *                              links to the airlock page.
 *  - insitu-workspace:datasets "Datasets of this workspace", a left side panel and a status-bar item:
 *                              each dataset's name, version, id, subjects/studies, read-only folder
 *                              (by name, /mnt/datasets/by-name/<slug>-v<version>, and by id) and
 *                              the project and grant it comes through with its end date
 *                              ({base}insitu/datasets: the mounted manifests and the session the
 *                              spawner gave the workspace; nothing is asked of a service).
 */
var _JUPYTERLAB;
(function () {
  "use strict";
  var scope = null;

  function config() {
    var el = document.getElementById("jupyter-config-data");
    try { return el ? JSON.parse(el.textContent) : {}; } catch (e) { return {}; }
  }
  function baseUrl() { var b = config().baseUrl || "/"; return b.endsWith("/") ? b : b + "/"; }
  function hubOrigin() { return config().hubHost || ""; }
  function xsrf() { var m = document.cookie.match(/(?:^|; )_xsrf=([^;]*)/); return m ? decodeURIComponent(m[1]) : ""; }
  function api(method, path, body) {
    var init = { method: method, credentials: "same-origin", headers: { "X-XSRFToken": xsrf() } };
    if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
    return fetch(baseUrl() + path, init).then(function (r) {
      return r.text().then(function (t) {
        var data = {}; try { data = t ? JSON.parse(t) : {}; } catch (e) { data = { message: t }; }
        if (!r.ok) { throw new Error(data.message || data.reason || ("HTTP " + r.status)); }
        return data;
      });
    });
  }
  function shared(name) {
    var versions = scope && scope[name];
    if (!versions) { return Promise.resolve(null); }
    var keys = Object.keys(versions).sort();
    return Promise.resolve(versions[keys[keys.length - 1]].get()).then(function (f) { return f(); });
  }
  function notify(app, message, type, autoClose) {
    return app.commands.execute("apputils:notify", { message: message, type: type || "info",
      options: { autoClose: autoClose === undefined ? 8000 : autoClose } }).catch(function () { window.alert(message); });
  }

  function noticePlugin() {
    return {
      id: "insitu-workspace:notice",
      autoStart: true,
      activate: function (app) {
        var shown = null;
        function poll() {
          api("GET", "insitu/notice").then(function (n) {
            if (!n || !n.id || n.id === shown) { return; }
            shown = n.id;
            document.body.setAttribute("data-insitu-notice", n.id);
            app.commands.execute("docmanager:save-all").catch(function () { return null; }).then(function () {
              document.body.setAttribute("data-insitu-saved", n.id);
              notify(app, n.message + " Your open notebooks were saved.", "warning", false);
            });
          }).catch(function () { return null; });
        }
        poll();
        window.setInterval(poll, 2000);
      }
    };
  }

  function datasetsPlugins(widgets, statusbar, ui) {
    // the workspace's datasets by name ({base}insitu/datasets: from the mounted manifests and the
    // session the spawner gave; nothing is asked of a service), in a left side panel and the status bar
    var PANEL_ID = "insitu-datasets-panel";

    function el(tag, cls, text) {
      var e = document.createElement(tag);
      if (cls) { e.className = cls; }
      if (text !== undefined) { e.textContent = text; }
      return e;
    }
    function plural(n, word, many) { return n + " " + (n === 1 ? word : (many || word + "s")); }
    function bytes(n) {
      var u = ["bytes", "KB", "MB", "GB", "TB"], i = 0;
      while (n >= 1000 && i < u.length - 1) { n /= 1000; i += 1; }
      return (i ? n.toFixed(1) : String(n)) + " " + u[i];
    }
    function label(d) { return (d.name || d.dataset_id) + (d.version ? " v" + d.version : ""); }
    function term(dl, key, value, cls) {
      dl.appendChild(el("dt", "", key));
      var dd = el("dd", cls); if (typeof value === "string") { dd.textContent = value; } else { dd.appendChild(value); }
      dl.appendChild(dd);
    }

    function fill(node, d) {
      var parts = [el("h2", "", "Datasets of this workspace")];
      var intro = el("p", "insitu-ds-intro", "Project " + (d.project || "?") + ". Read-only; open a dataset in a notebook " +
        "with open_dataset(\"<id>\") from insitu_workspace.datasets, or by its folder (by name or by id).");
      parts.push(intro);
      (d.datasets || []).forEach(function (x) {
        var sec = el("section", "insitu-dataset"); sec.setAttribute("data-dataset-id", x.dataset_id);
        var h = el("h3", "insitu-ds-title");
        h.appendChild(el("span", "insitu-ds-name", x.name || "(no name)"));
        if (x.version) { h.appendChild(el("span", "insitu-ds-version", " v" + x.version)); }
        sec.appendChild(h);
        var dl = el("dl");
        term(dl, "Id", x.dataset_id, "insitu-ds-id");
        if (x.name_path) {  // its readable folder (/mnt/datasets/by-name/...), the same read-only folder as by id
          term(dl, "Folder", el("code", "", x.name_path), "insitu-ds-name-path");
          term(dl, "Same as", el("code", "", x.path), "insitu-ds-path");
        } else {
          term(dl, "Folder", el("code", "", x.path), "insitu-ds-path");
        }
        if (x.n_studies !== undefined) {
          term(dl, "Contents", plural(x.n_subjects, "subject") + ", " + plural(x.n_studies, "study", "studies") +
            ", " + plural(x.n_series, "series", "series") + ", " + plural(x.n_files, "file") +
            " (" + bytes(x.size) + ")", "insitu-ds-counts");
        }
        var grant = "project " + (x.project || "?") + (x.grant_id ? ", grant " + x.grant_id : "");
        grant += x.expires_text ? ", until " + x.expires_text +
          (x.days_left !== null && x.days_left !== undefined ? " (" + plural(Math.max(0, x.days_left), "day") + " left)" : "")
          : ", end date not known in this workspace";
        term(dl, "Access", grant, "insitu-ds-grant");
        sec.appendChild(dl);
        if (x.problem) { sec.appendChild(el("p", "insitu-ds-problem", x.problem)); }
        parts.push(sec);
      });
      if (!(d.datasets || []).length) { parts.push(el("p", "insitu-ds-none", "No dataset in this workspace.")); }
      node.replaceChildren.apply(node, parts);
    }

    var CSS = ".insitu-datasets{font-size:var(--jp-ui-font-size1);color:var(--jp-ui-font-color1)}" +
      ".insitu-datasets h2{font-size:var(--jp-ui-font-size3);margin:.8em 0 .4em}" +
      ".insitu-datasets h3{font-size:var(--jp-ui-font-size2);margin:1.2em 0 .4em}" +
      ".insitu-datasets dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em .7em;margin:0}" +
      ".insitu-datasets dt{color:var(--jp-ui-font-color2)}.insitu-datasets dd{margin:0;overflow-wrap:anywhere}" +
      ".insitu-datasets .insitu-ds-problem{color:var(--jp-error-color1)}";

    return [{
      id: "insitu-workspace:datasets",
      autoStart: true,
      optional: statusbar && statusbar.IStatusBar ? [statusbar.IStatusBar] : [],
      activate: function (app, bar) {
        var style = el("style", "", CSS); document.head.appendChild(style);
        var panel = new widgets.Widget();
        panel.id = PANEL_ID; panel.addClass("insitu-datasets");
        panel.title.caption = "Datasets of this workspace";
        if (ui && ui.listIcon) { panel.title.icon = ui.listIcon; } else { panel.title.label = "Datasets"; }
        panel.node.style.padding = "0 1rem"; panel.node.style.overflow = "auto";
        var item = new widgets.Widget(); item.addClass("insitu-datasets-status");
        item.node.style.cursor = "pointer"; item.node.title = "Datasets of this workspace";
        item.node.className += " jp-StatusBar-TextItem";

        function render() {
          return api("GET", "insitu/datasets").then(function (d) {
            fill(panel.node, d);
            var names = (d.datasets || []).map(label);
            item.node.textContent = names.length ? "Datasets: " + names.join(", ") : "No dataset";
          }).catch(function (e) {
            panel.node.replaceChildren(el("p", "insitu-ds-problem", "The datasets could not be listed: " + e.message));
          });
        }
        function show() { app.shell.activateById(PANEL_ID); return render(); }
        panel.onAfterShow = function () { render(); };
        item.node.addEventListener("click", show);
        app.shell.add(panel, "left", { rank: 150 });
        app.commands.addCommand("insitu:datasets-panel", { label: "My datasets", caption: "Datasets of this workspace",
          execute: show });
        if (bar) { bar.registerStatusItem("insitu-workspace:datasets-status", { item: item, align: "left", rank: 10 }); }
        render();
      }
    }];
  }

  function exportPlugins(apputils, filebrowser, widgets) {
    var PANEL_ID = "insitu-exports-panel";
    var panel = null;
    var following = null;

    var STATES = {
      pending: "in review", approved: "approved: download it from the airlock page",
      rejected: "rejected", returned: "returned for changes"
    };

    function requestStates(url) {
      // the owner's requests, answered on this origin by the workspace gateway: {byDraft} or {reason}
      var unavailable = { byDraft: null, reason: "" };
      if (!url) { return Promise.resolve(unavailable); }
      return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json", "X-XSRFToken": xsrf() } })
        .then(function (r) {
          return r.json().catch(function () { return {}; }).then(function (body) {
            if (!r.ok || !body || !Array.isArray(body.requests)) {
              return { byDraft: null, reason: (body && typeof body.reason === "string") ? body.reason : "" };
            }
            var byDraft = {};
            body.requests.forEach(function (x) { if (x && x.draft_id) { byDraft[x.draft_id] = x; } });
            return { byDraft: byDraft, reason: "" };
          });
        }).catch(function () { return unavailable; });
    }

    function link(href, text, cls) {
      var a = document.createElement("a");
      a.href = /^https?:\/\//.test(href) ? href : hubOrigin() + href;  // absolute: the airlock on its own origin
      a.target = "_blank"; a.rel = "noopener"; a.textContent = text;
      a.style.color = "var(--jp-content-link-color)"; a.style.textDecoration = "underline";
      if (cls) { a.className = cls; }
      return a;
    }

    function renderPanel() {
      return api("GET", "insitu/exports").then(function (data) {
        return requestStates(data.status_url).then(function (st) { return [data, st]; });
      }).then(function (both) {
        var data = both[0], byDraft = both[1].byDraft, reason = both[1].reason;
        if (!panel || panel.isDisposed) { return; }
        var parts = [];
        var h = document.createElement("h2"); h.textContent = "My exports"; parts.push(h);
        var p = document.createElement("p");
        p.textContent = "Files leave the workspace only through the export airlock: submit a draft for review, " +
          "then follow it here until it is approved and download it from the airlock page.";
        parts.push(p);
        parts.push(link(data.follow_url, "Follow my export requests", "insitu-follow"));
        if (byDraft === null) {
          var note = document.createElement("p"); note.className = "insitu-status-unknown";
          note.textContent = "The state of submitted requests is unavailable just now" + (reason ? " (" + reason + ")" : "") +
            ": follow them on the airlock page.";
          parts.push(note);
        }
        var list = document.createElement("ul"); list.className = "insitu-drafts";
        (data.drafts || []).slice().reverse().forEach(function (d) {
          var li = document.createElement("li"); li.setAttribute("data-draft", d.id);
          li.appendChild(document.createTextNode("Draft " + d.id + " (" + (d.created_at || "").slice(0, 16).replace("T", " ") +
            "): " + d.files.join(", ") + " — "));
          var req = byDraft && byDraft[d.id];
          if (req) {
            li.setAttribute("data-state", req.state); li.setAttribute("data-request", req.request_id);
            var st = document.createElement("span"); st.className = "insitu-state";
            st.textContent = (STATES[req.state] || req.state) +
              (req.state === "pending" ? " (" + req.approvals + " of " + req.quorum + " approvals)" : "") + " ";
            li.appendChild(st);
            li.appendChild(link(data.request_url + req.request_id, "Open request " + req.request_id.slice(0, 8)));
          } else {
            if (byDraft) { li.setAttribute("data-state", "draft"); } else {
              var unknown = document.createElement("span"); unknown.className = "insitu-state";
              unknown.textContent = "state unavailable "; li.appendChild(unknown);
            }
            li.appendChild(link(d.submit_url, "Submit for review", "insitu-submit"));
          }
          list.appendChild(li);
        });
        if (!(data.drafts || []).length) { var none = document.createElement("li"); none.textContent = "No draft yet."; list.appendChild(none); }
        parts.push(list);
        panel.node.replaceChildren.apply(panel.node, parts);
      });
    }

    function openPanel(app) {
      if (!panel || panel.isDisposed) {
        panel = new widgets.Widget();
        panel.id = PANEL_ID; panel.title.label = "Exports"; panel.title.closable = true;
        panel.addClass("insitu-exports"); panel.node.style.padding = "1rem"; panel.node.style.overflow = "auto";
      }
      if (!panel.isAttached) { app.shell.add(panel, "main"); }
      app.shell.activateById(PANEL_ID);
      if (!following) {  // follow the requests while the panel is open
        following = window.setInterval(function () {
          if (!panel || panel.isDisposed) { window.clearInterval(following); following = null; return; }
          if (panel.isVisible) { renderPanel().catch(function () { return null; }); }
        }, 3000);
      }
      return renderPanel();
    }

    return [{
      id: "insitu-workspace:export",
      autoStart: true,
      requires: [filebrowser.IDefaultFileBrowser],
      activate: function (app, browser) {
        app.commands.addCommand("insitu:exports-panel", { label: "My exports", execute: function () { return openPanel(app); } });
        app.commands.addCommand("insitu:request-export", {
          label: "Request export…",
          caption: "Ask for the selected files to leave the workspace (reviewed before release)",
          execute: function () {
            var paths = [];
            var it = browser.selectedItems();
            var item = it.next();
            while (item && !item.done && item.value !== undefined) { if (item.value.type !== "directory") { paths.push(item.value.path); } item = it.next(); }
            if (!item || item.done === undefined) { /* a plain iterator of values */ }
            if (!paths.length) { return notify(app, "Choose one or more files to export.", "warning"); }
            return apputils.InputDialog.getText({
              title: "Request export of " + paths.length + " file" + (paths.length > 1 ? "s" : ""),
              label: "What are these files and why must they leave the platform?",
              placeholder: "e.g. Figure 2 and the metrics table of the paper"
            }).then(function (res) {
              if (!res.button.accept) { return null; }
              return api("POST", "insitu/exports", { paths: paths, justification: res.value || "" }).then(function (d) {
                notify(app, "Export draft " + d.id + " written (" + d.files.length + " files). Submit it for review in the exports panel.", "success");
                return openPanel(app);
              }).catch(function (e) { return notify(app, "Export not requested: " + e.message, "error"); });
            });
          }
        });
        app.contextMenu.addItem({ command: "insitu:request-export", selector: ".jp-DirListing-item[data-isdir=\"false\"]", rank: 9 });
        if (app.commands.hasCommand("launcher:create")) { /* the panel is also in the command palette */ }
      }
    }];
  }

  _JUPYTERLAB = _JUPYTERLAB || {};
  _JUPYTERLAB["insitu-workspace"] = {
    init: function (shareScope) { scope = shareScope; return Promise.resolve(); },
    get: function (module) {
      if (module !== "./extension") {
        return Promise.reject(new Error("Module " + module + " does not exist in container."));
      }
      return Promise.all([shared("@jupyterlab/apputils"), shared("@jupyterlab/filebrowser"), shared("@lumino/widgets"),
                          shared("@jupyterlab/statusbar"), shared("@jupyterlab/ui-components")])
        .then(function (mods) {
          var plugins = [noticePlugin()];
          if (mods[0] && mods[1] && mods[2]) { plugins = plugins.concat(exportPlugins(mods[0], mods[1], mods[2])); }
          if (mods[2]) { plugins = plugins.concat(datasetsPlugins(mods[2], mods[3], mods[4])); }
          return function () { return { __esModule: true, default: plugins }; };
        });
    }
  };
})();
