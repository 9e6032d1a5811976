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
 *                              seconds (not submitted, in review, approved, rejected, returned): the
 *                              browser asks the airlock's API (status_url) with the researcher's own
 *                              airlock sign-in; the workspace itself never reaches the airlock. Where
 *                              the browser cannot ask (not signed in to the airlock yet, or the airlock
 *                              on another site) the panel says so and links to the airlock page.
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

  function exportPlugins(apputils, filebrowser, widgets) {
    var PANEL_ID = "insitu-exports-panel";
    var panel = null;
    var following = null;

    var STATES = {
      pending: "in review", approved: "approved: download it from the airlock page",
      rejected: "rejected", returned: "returned for changes"
    };

    function requestStates(url) {
      // the researcher's own requests, asked by this browser with its airlock sign-in (a cookie of the airlock)
      if (!url) { return Promise.resolve(null); }
      return fetch(hubOrigin() + url, { credentials: "include", headers: { "Accept": "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (rows) {
          if (!Array.isArray(rows)) { return null; }
          var byDraft = {};
          rows.forEach(function (x) { if (x.draft_id) { byDraft[x.draft_id] = x; } });
          return byDraft;
        }).catch(function () { return null; });
    }

    function link(href, text, cls) {
      var a = document.createElement("a");
      a.href = hubOrigin() + href; a.target = "_blank"; a.rel = "noopener"; a.textContent = text;
      a.style.color = "var(--jp-content-link-color)"; a.style.textDecoration = "underline";
      if (cls) { a.className = cls; }
      return a;
    }

    function renderPanel() {
      return api("GET", "insitu/exports").then(function (data) {
        return requestStates(data.status_url).then(function (byDraft) { return [data, byDraft]; });
      }).then(function (both) {
        var data = both[0], byDraft = both[1];
        if (!panel || panel.isDisposed) { return; }
        var parts = [];
        var h = document.createElement("h2"); h.textContent = "My exports"; parts.push(h);
        var p = document.createElement("p");
        p.textContent = "Files leave the workspace only through the export airlock: submit a draft for review, " +
          "then follow it here until it is approved and download it from the airlock page.";
        parts.push(p);
        parts.push(link(data.follow_url, "Follow my export requests", "insitu-follow"));
        if (byDraft === null && data.status_url) {
          var note = document.createElement("p"); note.className = "insitu-status-unknown";
          note.textContent = "The state of submitted requests shows here once you have opened the airlock page in " +
            "this browser (its sign-in); until then the airlock page shows it.";
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
            if (byDraft) { li.setAttribute("data-state", "draft"); }
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
      return Promise.all([shared("@jupyterlab/apputils"), shared("@jupyterlab/filebrowser"), shared("@lumino/widgets")])
        .then(function (mods) {
          var plugins = [noticePlugin()];
          if (mods[0] && mods[1] && mods[2]) { plugins = plugins.concat(exportPlugins(mods[0], mods[1], mods[2])); }
          return function () { return { __esModule: true, default: plugins }; };
        });
    }
  };
})();
