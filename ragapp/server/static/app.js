// ragapp web UI. Vanilla JS, no build step. Every piece of user or document content goes
// into the page through textContent (never innerHTML), so a document's "<script>" is text.
"use strict";

(() => {
  const $ = (sel) => document.querySelector(sel);
  const body = document.body;
  const maxUploadMb = parseFloat(body.dataset.maxUploadMb || "100");
  const extensions = new Set((body.dataset.extensions || "").split(" ").filter(Boolean));
  const state = {
    collection: localStorage.getItem("ragapp.collection") || body.dataset.collection,
    history: [], // [{role, content}] of this conversation
    busy: null, // AbortController of the answer being streamed
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
    model.replaceChildren(icon("chip"), document.createTextNode(s.llm.replace(/^llamacpp:/, "llama.cpp · ")));
    model.title = `LLM: ${s.llm}\nEmbeddings: ${s.embedding_model}\nStore: ${s.store}`;
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
    resetChat();
    $("#uploads").replaceChildren();
    refreshAll();
  }

  function refreshAll() {
    return Promise.all([loadStatus(), loadDocuments(), loadCollections()]).catch((err) => console.error(err));
  }

  // --- documents --------------------------------------------------------------------------------
  async function loadDocuments() {
    const response = await api("/api/documents");
    if (!response.ok) return;
    const data = await response.json();
    const list = $("#doc-list");
    list.replaceChildren(...data.documents.map(documentItem));
    $("#docs-empty").hidden = data.documents.length > 0;
    $("#doc-count").textContent = data.documents.length
      ? `${plural(data.documents.length, "file")} · ${plural(data.chunks, "chunk")}` : "";
  }

  function documentItem(doc) {
    const del = el("button", { type: "button", class: "icon-button danger", "aria-label": `Delete ${doc.name}`, title: "Delete" }, icon("trash"));
    let armed = null;
    del.addEventListener("click", async () => {
      if (!armed) {
        del.classList.add("confirm");
        del.replaceChildren(document.createTextNode("Delete?"));
        del.setAttribute("aria-label", `Confirm: delete ${doc.name}`);
        armed = setTimeout(disarm, 4000);
        return;
      }
      clearTimeout(armed);
      del.disabled = true;
      const response = await api(`/api/documents/${doc.id}`, { method: "DELETE" });
      if (response.ok) {
        announce(`${doc.name} deleted`);
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
      del.setAttribute("aria-label", `Delete ${doc.name}`);
    }
    const meta = [plural(doc.chunks, "chunk"), formatBytes(doc.bytes)];
    if (doc.uploaded) meta.push("uploaded");
    return el("li", { class: "doc", "data-id": doc.id },
      el("span", { class: "doc-icon", "data-type": doc.type, text: doc.type.slice(0, 4) }),
      el("div", { class: "doc-main" },
        el("a", { class: "doc-name", href: doc.view_url, target: "_blank", rel: "noopener", title: doc.path, text: doc.name }),
        el("span", { class: "doc-meta", text: meta.join(" · ") })),
      el("div", { class: "doc-actions" },
        el("a", { class: "icon-button", href: doc.file_url, target: "_blank", rel: "noopener", "aria-label": `Open ${doc.name}`, title: "Open the file" }, icon("open")),
        del));
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
    state.history = [];
    const messages = $("#messages");
    messages.replaceChildren($("#chat-empty") || messages.firstChild);
    $("#chat-empty").hidden = false;
  }

  function scrollDown() {
    const messages = $("#messages");
    if (messages.scrollHeight - messages.scrollTop - messages.clientHeight < 160) messages.scrollTop = messages.scrollHeight;
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
    scrollDown();
    return { card, progress, answer };
  }

  function setProgress(view, text) {
    if (!text) { view.progress.replaceChildren(); return; }
    view.progress.replaceChildren(el("span", { class: "spinner", "aria-hidden": "true" }), document.createTextNode(text));
  }

  // The answer text with each valid [n] turned into a button that opens source n.
  function renderAnswer(node, text, sources) {
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
    node.replaceChildren(...parts);
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

  function notFound(view, hadSources) {
    const title = hadSources ? "The answer isn't in the passages found" : "Not found in your documents";
    const detail = hadSources
      ? "The model read the passages below and did not find the answer in them. Try rephrasing, or add the document that has it."
      : `No passage in “${state.collection}” was relevant enough, so the model was not asked. Try rephrasing, or add the document that has the answer.`;
    view.answer.replaceChildren(el("div", { class: "notice", role: "note" }, icon("search-off"),
      el("div", {}, el("strong", { text: title }), el("p", { text: detail }))));
    view.card.classList.add("not-found");
    announce(title);
  }

  function timingsLine(t) {
    const bits = [`retrieval ${Math.round(t.retrieve_ms)} ms`];
    if (t.completion_tokens) {
      bits.push(`first token ${(t.ttft_ms / 1000).toFixed(1)} s`);
      bits.push(`${plural(t.completion_tokens, "token")}${t.tokens_per_s ? ` at ${t.tokens_per_s.toFixed(0)} tok/s` : ""}`);
    }
    return el("div", { class: "meta-line", text: bits.join(" · ") });
  }

  async function ask(question) {
    userMessage(question);
    const view = assistantMessage();
    setProgress(view, "Searching your documents…");
    const controller = new AbortController();
    state.busy = controller;
    setBusy(true);
    let sources = [];
    let text = "";
    let finished = false;
    const messages = [...state.history, { role: "user", content: question }];
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
            if (data.refused) notFound(view, !data.not_found);
            else { renderAnswer(view.answer, text, sources); announce("Answer complete"); }
            if (sources.length) view.card.append(sourceChips(sources, data.citations));
            view.card.append(timingsLine(data.timings));
            state.history = [...messages, { role: "assistant", content: text }].slice(-16);
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
    $("#new-chat").addEventListener("click", () => { resetChat(); question.focus(); });
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
    refreshAll();
    question.focus();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();
