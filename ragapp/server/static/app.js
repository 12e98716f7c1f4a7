// ragapp web UI. Vanilla JS, no build step. Every piece of user or document content goes
// into the page through textContent (never innerHTML), so a document's "<script>" is text.
// Answers are Markdown: vendor/markdown-it.min.js parses them (raw HTML off) and the page
// is built from its tokens here, element by element, from an allow-list.
"use strict";

(() => {
  const $ = (sel) => document.querySelector(sel);
  const body = document.body;
  const maxUploadMb = parseFloat(body.dataset.maxUploadMb || "100");
  const extensions = new Set((body.dataset.extensions || "").split(" ").filter(Boolean));
  const state = {
    collection: localStorage.getItem("ragapp.collection") || body.dataset.collection,
    turns: [], // this conversation's finished answers, kept in localStorage per collection
    busy: null, // AbortController of the answer being streamed
    follow: true, // keep the newest answer in view (until the reader scrolls up)
    documentCount: 0,
  };

  // --- small helpers ----------------------------------------------------------------------
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key in node && typeof value !== "string") node[key] = value;
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children) if (child) node.append(child);
    return node;
  }
  function icon(name, cls = "icon") {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", cls);
    svg.setAttribute("aria-hidden", "true");
    const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
    use.setAttribute("href", `#i-${name}`);
    svg.append(use);
    return svg;
  }
  function announce(text) {
    const live = $("#announcer");
    live.textContent = "";
    setTimeout(() => { live.textContent = text; }, 30);
  }
  function formatBytes(n) {
    if (n < 1024) return `${n} B`;
    if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
    return `${(n / 1024 / 1024).toFixed(1)} MB`;
  }
  function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }
  function withCollection(path) {
    const sep = path.includes("?") ? "&" : "?";
    return `${path}${sep}collection=${encodeURIComponent(state.collection)}`;
  }
  function pageLabel(page) { return page === null || page === undefined ? "" : `p. ${page}`; }

  async function api(path, options = {}) {
    const response = await fetch(withCollection(path), {
      credentials: "same-origin",
      ...options,
      headers: { Accept: "application/json", ...(options.headers || {}) },
    });
    if (response.status === 401) { location.assign("/login"); throw new Error("signed out"); }
    return response;
  }
  async function errorText(response) {
    try {
      const data = await response.json();
      if (typeof data.detail === "string") return data.detail;
      if (Array.isArray(data.detail)) return data.detail.map((d) => d.msg).join("; ");
    } catch (_) { /* not JSON */ }
    return `${response.status} ${response.statusText}`;
  }

  // Server-sent events over fetch (works with POST and with the session cookie).
  async function readEvents(response, onEvent, signal) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    while (true) {
      if (signal && signal.aborted) { reader.cancel(); return; }
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.search(/\r?\n\r?\n/)) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut).replace(/^\r?\n\r?\n/, "");
        let name = "message";
        const data = [];
        for (const line of block.split(/\r?\n/)) {
          if (line.startsWith("event:")) name = line.slice(6).trim();
          else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
        }
        if (data.length) onEvent(name, JSON.parse(data.join("\n")));
      }
    }
  }

  // --- status and collections ---------------------------------------------------------------
  async function loadStatus() {
    const response = await api("/api/status");
    if (!response.ok) return;
    const s = await response.json();
    const model = $("#status-model");
    const label = s.llm.replace(/^llamacpp:/, "llama.cpp · ");
    model.replaceChildren(icon("chip"), document.createTextNode(s.llm_note ? `${label} · demo model` : label));
    model.classList.toggle("demo", Boolean(s.llm_note));
    model.title = `LLM: ${s.llm}${s.llm_note ? ` (${s.llm_note})` : ""}\nEmbeddings: ${s.embedding_model}\nStore: ${s.store}`;
    const gpu = $("#status-gpu");
    gpu.replaceChildren(el("span", { class: "dot" }),
      document.createTextNode(s.gpu.active ? `GPU offload · ${s.gpu.backend}` : "CPU only"));
    gpu.className = `pill ${s.gpu.active ? "on" : "off"}`;
    gpu.title = s.gpu.active
      ? `llama.cpp offloads ${s.gpu.layers_offloaded ?? "all requested"} layers to ${s.gpu.backend}`
      : s.gpu.supported ? "GPU offload is off (n_gpu_layers = 0)" : "This llama.cpp build has no GPU support: the model runs on the CPU";
    state.documentCount = s.documents;
    $("#empty-hint").textContent = s.documents ? "" : "This collection is empty — add files in the Documents panel to start.";
  }

  async function loadCollections() {
    const response = await api("/api/collections");
    if (!response.ok) return;
    const data = await response.json();
    const names = data.collections.filter((c) => !c.error).map((c) => c.name);
    if (!names.includes(state.collection)) names.push(state.collection);
    const select = $("#collection");
    select.replaceChildren(...names.sort().map((name) => {
      const known = data.collections.some((c) => c.name === name);
      return el("option", { value: name, text: known ? name : `${name} (new)`, selected: name === state.collection });
    }));
  }

  function switchCollection(name) {
    state.collection = name;
    localStorage.setItem("ragapp.collection", name);
    restoreChat();
    $("#uploads").replaceChildren();
    refreshAll();
  }

  function refreshAll() {
    return Promise.all([loadStatus(), loadDocuments(), loadCollections()]).catch((err) => console.error(err));
  }

  // --- documents --------------------------------------------------------------------------------
  // Grouped by folder (uploads first), with the files that failed to ingest among them; the
  // filter box hides what matches neither name nor path as you type.
  async function loadDocuments() {
    const response = await api("/api/documents");
    if (!response.ok) return;
    const data = await response.json();
    const failed = data.failed || [];
    const items = [...data.documents.map(documentItem), ...failed.map(failedItem)];
    $("#doc-list").replaceChildren(...folderGroups(items));
    $("#docs-empty").hidden = items.length > 0;
    $("#doc-filter-row").hidden = items.length === 0;
    const counts = data.documents.length ? [plural(data.documents.length, "file"), plural(data.chunks, "chunk")] : [];
    if (failed.length) counts.push(`${failed.length} failed`);
    $("#doc-count").textContent = counts.join(" · ");
    filterDocuments();
  }

  // POSIX paths (a "\\" is part of a name: a byte that is not UTF-8 is shown as "\\xNN")
  function folderOf(doc) {
    const cut = doc.path.lastIndexOf("/");
    return cut > 0 ? doc.path.slice(0, cut) : "/";
  }
  // A folder by its last name (its last two where two folders share one); the title has it all.
  function folderLabels(folders) {
    const tail = (folder, n) => folder.split("/").filter(Boolean).slice(-n).join("/") || folder;
    const counts = new Map();
    for (const f of folders) counts.set(tail(f, 1), (counts.get(tail(f, 1)) || 0) + 1);
    return new Map(folders.map((f) => [f, counts.get(tail(f, 1)) > 1 ? tail(f, 2) : tail(f, 1)]));
  }

  function folderGroups(items) {
    const groups = new Map();
    for (const item of items) {
      const key = item.doc.uploaded ? "" : folderOf(item.doc); // "": the uploads folder
      if (!groups.has(key)) groups.set(key, { folder: folderOf(item.doc), items: [] });
      groups.get(key).items.push(item);
    }
    const labels = folderLabels([...groups.keys()].filter(Boolean));
    return [...groups.keys()].sort().map((key) => {
      const { folder, items: members } = groups.get(key);
      members.sort((a, b) => a.doc.name.localeCompare(b.doc.name));
      const name = key === "" ? "Uploads" : labels.get(key);
      return el("li", { class: "folder" },
        el("div", { class: "folder-head", title: folder },
          icon("folder"), el("span", { class: "folder-name", text: name }),
          el("span", { class: "folder-count", text: String(members.length) })),
        el("ul", { class: "folder-docs", "aria-label": key === "" ? "Uploads" : `Folder ${folder}` },
          ...members.map((m) => m.node)));
    });
  }

  function filterDocuments() {
    const query = $("#doc-filter").value.trim().toLowerCase();
    let shown = 0;
    for (const folder of $("#doc-list").children) {
      let inFolder = 0;
      for (const item of folder.querySelectorAll(".doc")) {
        item.hidden = Boolean(query) && !item.dataset.search.includes(query);
        if (!item.hidden) inFolder++;
      }
      folder.hidden = inFolder === 0;
      shown += inFolder;
    }
    const none = $("#filter-empty");
    none.hidden = !query || shown > 0;
    none.textContent = `No file matches “${$("#doc-filter").value.trim()}”.`;
  }

  // A delete button that asks once more ("Delete?") before it deletes.
  function deleteButton(doc, verb) {
    const label = `${verb} ${doc.name}`;
    const del = el("button", { type: "button", class: "icon-button danger", "aria-label": label, title: verb }, icon("trash"));
    let armed = null;
    del.addEventListener("click", async () => {
      if (!armed) {
        del.classList.add("confirm");
        del.replaceChildren(document.createTextNode(`${verb}?`));
        del.setAttribute("aria-label", `Confirm: ${label.toLowerCase().slice(0, 1)}${label.slice(1)}`);
        armed = setTimeout(disarm, 4000);
        return;
      }
      clearTimeout(armed);
      del.disabled = true;
      const response = await api(`/api/documents/${doc.id}`, { method: "DELETE" });
      if (response.ok) {
        announce(`${doc.name} ${verb === "Forget" ? "forgotten" : "deleted"}`);
        await refreshAll();
      } else {
        announce(await errorText(response));
        disarm();
      }
    });
    del.addEventListener("blur", () => { if (armed) { clearTimeout(armed); disarm(); } });
    function disarm() {
      armed = null;
      del.disabled = false;
      del.classList.remove("confirm");
      del.replaceChildren(icon("trash"));
      del.setAttribute("aria-label", label);
    }
    return del;
  }

  function documentItem(doc) {
    const meta = [plural(doc.chunks, "chunk"), formatBytes(doc.bytes)];
    if (doc.uploaded) meta.push("uploaded");
    const node = el("li", { class: "doc", "data-id": doc.id, "data-search": `${doc.name}\n${doc.path}`.toLowerCase() },
      el("span", { class: "doc-icon", "data-type": doc.type, text: doc.type.slice(0, 4) }),
      el("div", { class: "doc-main" },
        el("a", { class: "doc-name", href: doc.view_url, target: "_blank", rel: "noopener", title: doc.path, text: doc.name }),
        el("span", { class: "doc-meta", text: meta.join(" · ") })),
      el("div", { class: "doc-actions" },
        el("a", { class: "icon-button", href: doc.file_url, target: "_blank", rel: "noopener", "aria-label": `Open ${doc.name}`, title: "Open the file" }, icon("open")),
        deleteButton(doc, "Delete")));
    return { doc, node };
  }

  // A file that could not be ingested: its reason, and a button that deletes the uploaded
  // copy (or, for a file from your folders, forgets the failure and leaves the file alone).
  function failedItem(doc) {
    const reason = `${doc.skipped ? "Skipped" : "Failed"}: ${doc.reason || "could not be read"}`;
    const node = el("li", { class: `doc failed${doc.skipped ? " skipped" : ""}`, "data-id": doc.id, "data-search": `${doc.name}\n${doc.path}`.toLowerCase() },
      el("span", { class: "doc-icon", "data-type": "failed", "aria-hidden": "true" }, icon("alert")),
      el("div", { class: "doc-main" },
        el("span", { class: "doc-name", title: doc.path, text: doc.name }),
        el("span", { class: "doc-meta doc-reason", title: doc.reason, text: reason })),
      el("div", { class: "doc-actions" }, deleteButton(doc, doc.uploaded ? "Delete" : "Forget")));
    return { doc, node };
  }

  // uploads: each file its own request (per-file progress), one after another
  const uploadQueue = [];
  let uploading = false;

  function addFiles(files) {
    for (const file of files) {
      const row = uploadRow(file);
      const ext = file.name.includes(".") ? file.name.split(".").pop().toLowerCase() : "";
      if (!extensions.has(ext)) { row.fail(`unsupported type${ext ? ` .${ext}` : ""}`); continue; }
      if (file.size > maxUploadMb * 1024 * 1024) { row.fail(`larger than ${maxUploadMb} MB`); continue; }
      uploadQueue.push({ file, row });
    }
    if (!uploading) nextUpload();
  }

  function uploadRow(file) {
    const status = el("span", { class: "upload-state", text: "waiting" });
    const fill = el("span");
    const dismiss = el("button", { type: "button", class: "icon-button dismiss", "aria-label": `Dismiss ${file.name}`, title: "Dismiss", text: "×", hidden: true, onclick: () => item.remove() });
    const item = el("li", { class: "upload" },
      el("div", { class: "upload-top" }, el("span", { class: "upload-name", text: file.name, title: file.name }), status, dismiss),
      el("div", { class: "bar", role: "presentation" }, fill));
    $("#uploads").prepend(item);
    const finish = (cls, text) => { item.className = `upload ${cls}`; status.textContent = text; dismiss.hidden = false; };
    return {
      item,
      progress(fraction, text) { item.classList.remove("indeterminate"); fill.style.width = `${Math.round(fraction * 100)}%`; status.textContent = text; },
      working(text) { item.classList.add("indeterminate"); status.textContent = text; },
      done(text) { finish("done", text); },
      fail(text) { finish("failed", text); announce(`${file.name}: ${text}`); },
    };
  }

  function nextUpload() {
    const next = uploadQueue.shift();
    if (!next) { uploading = false; return; }
    uploading = true;
    const { file, row } = next;
    const form = new FormData();
    form.append("files", file, file.name);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", withCollection("/api/documents"));
    xhr.setRequestHeader("Accept", "application/json");
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) row.progress(e.loaded / e.total, `uploading ${Math.round((100 * e.loaded) / e.total)}%`);
    });
    xhr.addEventListener("load", () => {
      let data = {};
      try { data = JSON.parse(xhr.responseText); } catch (_) { /* keep {} */ }
      if (xhr.status === 401) { location.assign("/login"); return; }
      if (xhr.status !== 202) {
        row.fail(typeof data.detail === "string" ? data.detail : `upload failed (${xhr.status})`);
      } else {
        row.working("ingesting…");
        followJob(data.job_id, (job) => {
          const f = job.files[0];
          if (job.state === "failed") row.fail(job.error || "ingest failed");
          else if (!f || job.state !== "done") row.working(job.state === "queued" ? "queued…" : "ingesting…");
          else if (f.status === "failed") row.fail(f.reason || "could not be read");
          else if (f.status === "unchanged") row.done("already up to date");
          else row.done(`${plural(f.chunks, "chunk")} · ${f.status}`);
          if (job.state === "done" || job.state === "failed") {
            announce(`${file.name} ${job.state === "done" && f && f.status !== "failed" ? "ingested" : "failed"}`);
            refreshAll();
          }
        });
      }
      nextUpload();
    });
    xhr.addEventListener("error", () => { row.fail("network error"); nextUpload(); });
    row.progress(0, "uploading");
    xhr.send(form);
  }

  async function followJob(jobId, onUpdate) {
    try {
      const response = await api(`/api/jobs/${jobId}/events`, { headers: { Accept: "text/event-stream" } });
      if (!response.ok) throw new Error(await errorText(response));
      await readEvents(response, (_name, job) => onUpdate(job));
    } catch (err) {
      // the stream broke: poll instead
      const response = await api(`/api/jobs/${jobId}`);
      if (response.ok) {
        const job = await response.json();
        onUpdate(job);
        if (job.state === "queued" || job.state === "running") setTimeout(() => followJob(jobId, onUpdate), 1000);
      }
    }
  }

  async function resync() {
    const button = $("#sync");
    const status = $("#sync-status");
    button.disabled = true;
    status.textContent = "Re-syncing…";
    const response = await api("/api/sync", { method: "POST" });
    if (!response.ok) { status.textContent = await errorText(response); button.disabled = false; return; }
    const { job_id: jobId } = await response.json();
    followJob(jobId, (job) => {
      if (job.state === "failed") status.textContent = `Re-sync failed: ${job.error}`;
      else if (job.state !== "done") status.textContent = job.files_total ? `Re-syncing ${job.files_done}/${job.files_total}…` : "Re-syncing…";
      else {
        const r = job.report || {};
        const changed = (r.added || 0) + (r.updated || 0) + (r.removed || 0);
        status.textContent = changed
          ? `${r.added} added · ${r.updated} updated · ${r.removed} removed${r.failed && r.failed.length ? ` · ${r.failed.length} failed` : ""}`
          : `Up to date (${plural(r.unchanged || 0, "file")} checked)`;
      }
      if (job.state === "done" || job.state === "failed") { button.disabled = false; refreshAll(); }
    });
  }

  function setupDropzone() {
    const zone = $("#dropzone");
    const input = $("#file-input");
    $("#choose-files").addEventListener("click", () => input.click());
    input.addEventListener("change", () => { addFiles([...input.files]); input.value = ""; });
    let depth = 0;
    const targets = [zone, document.body];
    for (const target of targets) {
      target.addEventListener("dragenter", (e) => { if (hasFiles(e)) { e.preventDefault(); depth++; zone.classList.add("over"); } });
      target.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) zone.classList.remove("over"); });
      target.addEventListener("dragover", (e) => { if (hasFiles(e)) e.preventDefault(); });
      target.addEventListener("drop", (e) => {
        if (!hasFiles(e)) return;
        e.preventDefault();
        e.stopPropagation();
        depth = 0;
        zone.classList.remove("over");
        addFiles([...e.dataTransfer.files]);
      });
    }
  }
  function hasFiles(e) { return e.dataTransfer && [...e.dataTransfer.types].includes("Files"); }

  // --- chat ---------------------------------------------------------------------------------------
  function resetChat() {
    if (state.busy) state.busy.abort();
    state.turns = [];
    const messages = $("#messages");
    messages.replaceChildren($("#chat-empty") || messages.firstChild);
    $("#chat-empty").hidden = false;
  }

  // The conversation of each collection is kept in this browser (localStorage) until it is
  // cleared, so a reload shows it again; signing out forgets every one.
  const CHAT_KEY = "ragapp.chat.";
  const KEPT_TURNS = 50;

  function storedTurns(collection) {
    try {
      const data = JSON.parse(localStorage.getItem(CHAT_KEY + collection) || "null");
      const turns = data && Array.isArray(data.turns) ? data.turns : [];
      return turns.filter((t) => t && typeof t.question === "string" && typeof t.answer === "string" && Array.isArray(t.sources));
    } catch (_) { return []; }
  }

  function storeTurns() {
    let turns = state.turns.slice(-KEPT_TURNS);
    for (;;) {
      try {
        localStorage.setItem(CHAT_KEY + state.collection, JSON.stringify({ version: 1, turns }));
        return;
      } catch (_) { // over the quota: keep fewer, oldest dropped first
        if (!turns.length) return;
        turns = turns.slice(Math.ceil(turns.length / 4));
      }
    }
  }

  function clearChat() {
    resetChat();
    localStorage.removeItem(CHAT_KEY + state.collection);
    announce("Conversation cleared");
  }

  function forgetAllChats() {
    for (const key of Object.keys(localStorage)) if (key.startsWith(CHAT_KEY)) localStorage.removeItem(key);
  }

  function restoreChat() {
    resetChat();
    state.turns = storedTurns(state.collection);
    for (const turn of state.turns) {
      userMessage(turn.question);
      showAnswer(assistantMessage(), turn, true);
    }
    const messages = $("#messages");
    messages.scrollTo({ top: messages.scrollHeight, behavior: "instant" });
    state.follow = true;
  }

  // [{role, content}] for /api/chat: the last turns of this conversation
  function chatHistory() {
    return state.turns.flatMap((t) => [{ role: "user", content: t.question }, { role: "assistant", content: t.answer }]).slice(-16);
  }

  // Keep the newest answer in view while the reader stays at the bottom; scrolling up stops it
  // (until they come back down or ask again).
  function scrollDown(force = false) {
    const messages = $("#messages");
    if (force) state.follow = true;
    if (state.follow) messages.scrollTop = messages.scrollHeight;
  }
  function watchScrolling() {
    const messages = $("#messages");
    let lastTop = messages.scrollTop;
    messages.addEventListener("scroll", () => {
      const atBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 24;
      if (atBottom) state.follow = true;
      else if (messages.scrollTop < lastTop - 2) state.follow = false; // the reader scrolled up
      lastTop = messages.scrollTop;
    }, { passive: true });
  }

  function userMessage(text) {
    $("#chat-empty").hidden = true;
    $("#messages").append(el("div", { class: "msg user" }, el("div", { class: "bubble", text })));
  }

  function assistantMessage() {
    const progress = el("div", { class: "progress-line" });
    const answer = el("div", { class: "answer" });
    const card = el("div", { class: "card", "aria-busy": "true" }, progress, answer);
    const avatar = el("img", { class: "avatar", src: "/static/favicon.svg", alt: "" });
    $("#messages").append(el("div", { class: "msg assistant" }, avatar, card));
    return { card, progress, answer };
  }

  function setProgress(view, text) {
    if (!text) { view.progress.replaceChildren(); return; }
    view.progress.replaceChildren(el("span", { class: "spinner", "aria-hidden": "true" }), document.createTextNode(text));
  }

  // --- Markdown answers ---------------------------------------------------------------------
  // markdown-it only parses, with raw HTML off (a "<script>" in an answer is a text token) and
  // no linkify; the DOM is built from its tokens with elements from this list, text through
  // textContent, and links only to http(s) and mailto. Without the parser: plain text.
  const markdown = typeof window.markdownit === "function"
    ? window.markdownit({ html: false, linkify: false, typographer: false }) : null;
  const MARKDOWN_TAGS = new Set(["p", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote",
    "em", "strong", "s", "table", "thead", "tbody", "tr", "th", "td"]);
  const LINK_SCHEMES = new Set(["http:", "https:", "mailto:"]);

  function safeHref(href) {
    try {
      const url = new URL(href || "", location.href);
      return LINK_SCHEMES.has(url.protocol) ? url.href : null;
    } catch (_) { return null; }
  }

  // Text with each valid [n] turned into a button that opens source n.
  function citedText(text, sources) {
    const parts = [];
    let last = 0;
    for (const match of text.matchAll(/\[(\d+)\]/g)) {
      const n = Number(match[1]);
      const src = sources[n - 1];
      if (!src) continue;
      parts.push(document.createTextNode(text.slice(last, match.index)));
      const label = `Source ${n}: ${src.name}${src.page != null ? `, page ${src.page}` : ""}`;
      parts.push(el("button", { type: "button", class: "cite", text: String(n), "aria-label": label, title: label, onclick: () => openSource(src) }));
      last = match.index + match[0].length;
    }
    parts.push(document.createTextNode(text.slice(last)));
    return parts;
  }

  function markdownNodes(text, sources) {
    const root = document.createDocumentFragment();
    const stack = [root];
    let inLink = 0;
    const top = () => stack[stack.length - 1];
    const add = (node) => { top().append(node); return node; };
    const link = (href, label) => el("a", { href, target: "_blank", rel: "noopener noreferrer", text: label });
    const walk = (tokens) => {
      for (const token of tokens) {
        if (token.nesting === 1) {
          let node;
          if (token.hidden) node = top(); // the paragraphs of a tight list: no <p>
          else if (token.type === "link_open") {
            const href = safeHref(token.attrGet("href"));
            node = add(href ? el("a", { href, target: "_blank", rel: "noopener noreferrer", title: token.attrGet("title") }) : el("span"));
            inLink++;
          } else if (MARKDOWN_TAGS.has(token.tag)) {
            node = add(document.createElement(token.tag));
            const start = Number(token.attrGet("start"));
            if (token.tag === "ol" && start > 1) node.start = start;
            const align = /text-align:(left|right|center)/.exec(token.attrGet("style") || "");
            if (align) node.style.textAlign = align[1]; // CSSOM, not a style attribute: CSP allows it
          } else node = add(el("span"));
          stack.push(node);
        } else if (token.nesting === -1) {
          if (token.type === "link_close") inLink--;
          if (stack.length > 1) stack.pop();
        } else if (token.type === "inline") walk(token.children || []);
        else if (token.type === "text") top().append(...(inLink ? [token.content] : citedText(token.content, sources)));
        else if (token.type === "code_inline") add(el("code", { text: token.content }));
        else if (token.type === "fence" || token.type === "code_block") {
          const lang = /^[\w+#.-]+/.exec(token.info || "");
          add(el("pre", {}, el("code", { class: lang ? `language-${lang[0]}` : null, text: token.content })));
        } else if (token.type === "softbreak" || token.type === "hardbreak") add(document.createElement("br"));
        else if (token.type === "hr") add(document.createElement("hr"));
        else if (token.type === "image") { // never loaded: a link to it, named by its alt text
          const href = safeHref(token.attrGet("src"));
          const label = token.content ? `${token.content} (image)` : href;
          add(href && !inLink ? link(href, label) : document.createTextNode(token.content));
        } else if (token.content) add(document.createTextNode(token.content)); // html_*, if ever
      }
    };
    walk(markdown.parse(text, {}));
    return root;
  }

  function renderAnswer(node, text, sources) {
    if (!markdown) { node.classList.add("plain"); node.replaceChildren(...citedText(text, sources)); return; }
    node.replaceChildren(markdownNodes(text, sources));
  }

  function sourceChips(sources, cited) {
    const row = el("div", { class: "sources" }, el("span", { class: "sources-label", text: "Sources" }));
    for (const src of sources) {
      const chip = el("button", {
        type: "button",
        class: `source-chip${cited.includes(src.n) ? " cited" : ""}`,
        "aria-label": `Source ${src.n}: ${src.name}${src.page != null ? `, page ${src.page}` : ""}`,
        onclick: () => openSource(src),
      },
      el("span", { class: "n", text: String(src.n) }),
      el("span", { class: "label", text: src.name }),
      src.page != null ? el("span", { class: "page", text: pageLabel(src.page) }) : null);
      row.append(chip);
    }
    return row;
  }

  function notFound(view, hadSources, quiet = false) {
    const title = hadSources ? "The answer isn't in the passages found" : "Not found in your documents";
    const detail = hadSources
      ? "The model read the passages below and did not find the answer in them. Try rephrasing, or add the document that has it."
      : `No passage in “${state.collection}” was relevant enough, so the model was not asked. Try rephrasing, or add the document that has the answer.`;
    view.answer.replaceChildren(el("div", { class: "notice", role: "note" }, icon("search-off"),
      el("div", {}, el("strong", { text: title }), el("p", { text: detail }))));
    view.card.classList.add("not-found");
    if (!quiet) announce(title);
  }

  function timingsLine(t) {
    const bits = [`retrieval ${Math.round(t.retrieve_ms)} ms`];
    if (t.completion_tokens) {
      bits.push(`first token ${(t.ttft_ms / 1000).toFixed(1)} s`);
      bits.push(`${plural(t.completion_tokens, "token")}${t.tokens_per_s ? ` at ${t.tokens_per_s.toFixed(0)} tok/s` : ""}`);
    }
    return el("div", { class: "meta-line", text: bits.join(" · ") });
  }

  // A finished answer (live, or kept from before a reload): the text, its sources, timings.
  function showAnswer(view, turn, quiet = false) {
    if (turn.refused) notFound(view, !turn.not_found, quiet);
    else renderAnswer(view.answer, turn.answer, turn.sources);
    if (turn.sources.length) view.card.append(sourceChips(turn.sources, turn.citations || []));
    if (turn.timings) view.card.append(timingsLine(turn.timings));
    view.card.removeAttribute("aria-busy");
  }

  async function ask(question) {
    userMessage(question);
    const view = assistantMessage();
    scrollDown(true);
    setProgress(view, "Searching your documents…");
    const controller = new AbortController();
    state.busy = controller;
    setBusy(true);
    let sources = [];
    let text = "";
    let finished = false;
    const messages = [...chatHistory(), { role: "user", content: question }];
    try {
      for (let attempt = 1; ; attempt++) {
        const response = await api("/api/chat", {
          method: "POST",
          headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
          body: JSON.stringify({ messages }),
          signal: controller.signal,
        });
        const busy = Number(response.headers.get("Retry-After"));
        if (response.status === 503 && busy && attempt <= BUSY_RETRIES) {
          await waitWhileBusy(view, busy, controller.signal);
          continue;
        }
        if (!response.ok) throw new Error(await errorText(response));
        let retryIn = 0;
        await readEvents(response, (name, data) => {
          if (name === "queued") {
            setProgress(view, data.position === 1
              ? "Queued — waiting for the question ahead of yours"
              : `Queued — ${data.position} questions ahead of yours`);
          } else if (name === "started") {
            setProgress(view, "Searching your documents…");
          } else if (name === "sources") {
            sources = data.sources;
            setProgress(view, sources.length ? `Reading ${plural(sources.length, "passage")}…` : "");
            scrollDown();
          } else if (name === "token") {
            if (!text) { setProgress(view, ""); view.answer.classList.add("streaming"); }
            text += data.text;
            renderAnswer(view.answer, text, sources);
            scrollDown();
          } else if (name === "done") {
            finished = true;
            setProgress(view, "");
            view.answer.classList.remove("streaming");
            text = data.answer;
            const turn = { question, answer: text, refused: data.refused, not_found: data.not_found, sources, citations: data.citations, timings: data.timings };
            showAnswer(view, turn);
            if (!data.refused) announce("Answer complete");
            state.turns.push(turn);
            storeTurns();
            scrollDown();
          } else if (name === "error") {
            // the line was full or the time ran out before a word was written: wait, retry
            if (data.retry_after && !text && attempt <= BUSY_RETRIES) { retryIn = data.retry_after; return; }
            throw new Error(data.detail || data.error);
          }
        }, controller.signal);
        if (!retryIn || controller.signal.aborted) break;
        await waitWhileBusy(view, retryIn, controller.signal);
      }
      if (!finished && !controller.signal.aborted) throw new Error("the answer stopped unexpectedly");
    } catch (err) {
      setProgress(view, "");
      view.answer.classList.remove("streaming");
      if (controller.signal.aborted) {
        view.card.append(el("div", { class: "meta-line", text: "Stopped." }));
      } else {
        view.card.append(el("div", { class: "error-box", role: "alert", text: err.message }));
      }
    } finally {
      view.card.removeAttribute("aria-busy");
      state.busy = null;
      setBusy(false);
      scrollDown();
    }
  }

  // The server answered 503 with Retry-After: count down in the answer's place, then retry.
  const BUSY_RETRIES = 5;
  async function waitWhileBusy(view, seconds, signal) {
    for (let left = Math.ceil(seconds); left > 0; left--) {
      if (signal.aborted) return;
      setProgress(view, `The server is busy — retrying in ${left} s`);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    setProgress(view, "Searching your documents…");
  }

  function setBusy(busy) {
    $("#send").hidden = busy;
    $("#stop").hidden = !busy;
  }

  // --- source dialog --------------------------------------------------------------------------
  function openSource(src) {
    const dialog = $("#source-dialog");
    $("#source-n").textContent = `Source ${src.n}`;
    $("#source-title").textContent = src.name;
    const meta = [];
    if (src.page != null) meta.push(`Page ${src.page}`);
    if (src.section) meta.push(src.section);
    meta.push(`Relevance ${src.score.toFixed(2)}`);
    $("#source-meta").textContent = meta.join(" · ");
    $("#source-text").textContent = src.text;
    const fileUrl = withCollection(`/api/documents/${src.document_id}/file`);
    const isPdf = src.source.toLowerCase().endsWith(".pdf");
    const open = $("#source-open");
    open.href = isPdf && src.page != null ? `${fileUrl}#page=${src.page}` : fileUrl;
    open.textContent = isPdf && src.page != null ? `Open PDF at page ${src.page}` : "Open file";
    $("#source-view").href = withCollection(`/documents/${src.document_id}`) + `#${src.chunk}`;
    dialog.showModal();
  }

  // --- wiring -------------------------------------------------------------------------------------
  function setup() {
    const question = $("#question");
    const form = $("#ask-form");
    const autosize = () => { question.style.height = "auto"; question.style.height = `${Math.min(question.scrollHeight, 200)}px`; };
    question.addEventListener("input", autosize);
    question.addEventListener("keydown", (e) => {
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); form.requestSubmit(); }
    });
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const text = question.value.trim();
      if (!text || state.busy) return;
      question.value = "";
      autosize();
      ask(text);
    });
    $("#stop").addEventListener("click", () => state.busy && state.busy.abort());
    $("#clear-chat").addEventListener("click", () => { clearChat(); question.focus(); });
    $("#doc-filter").addEventListener("input", filterDocuments);
    const signout = $(".signout");
    if (signout) signout.addEventListener("submit", forgetAllChats);
    $("#sync").addEventListener("click", resync);
    $("#collection").addEventListener("change", (e) => switchCollection(e.target.value));
    const dialog = $("#collection-dialog");
    $("#new-collection").addEventListener("click", () => { $("#collection-name").value = ""; dialog.showModal(); });
    dialog.addEventListener("close", () => {
      const name = $("#collection-name").value.trim();
      if (dialog.returnValue === "create" && name) {
        const select = $("#collection");
        if (![...select.options].some((o) => o.value === name)) select.append(el("option", { value: name, text: `${name} (new)` }));
        select.value = name;
        switchCollection(name);
      }
    });
    document.addEventListener("keydown", (e) => {
      if (e.key === "/" && !["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName) && !document.querySelector("dialog[open]")) {
        e.preventDefault();
        question.focus();
      }
    });
    setupDropzone();
    watchScrolling();
    restoreChat();
    refreshAll();
    question.focus();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();
