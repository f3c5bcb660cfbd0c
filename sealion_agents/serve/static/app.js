/* The document chat page of `sealion serve`: plain JavaScript, no framework, works offline.

   Data flow: API key (localStorage) -> collections (list, create) -> uploads (XMLHttpRequest
   for the upload bytes, then the job's event stream, or polling) -> questions: POST .../ask
   with stream=true, read with fetch() + a stream reader (EventSource cannot send the
   Authorization header), events query, sources, reasoning, answer, verdict, result or error.

   Security: everything that comes from the server or from files (passages, file names,
   answers, errors) is inserted as text (textContent, text nodes), never as HTML. */
"use strict";

(() => {
  const KEY_STORE = "sealion.apiKey";
  const COLLECTION_STORE = "sealion.collection";
  const THINKING_STORE = "sealion.thinking";
  const CITATION = /\[(\d{1,3}(?:\s*[,;]\s*\d{1,3})*)\]/g;
  const POLL_MS = 500;

  const state = {
    key: "",
    collection: "",
    history: [], // [{role, content}] of this conversation, sent with the next question
    asking: null, // the AbortController of the question being answered
    uploading: false,
    activeCitation: null,
  };

  const $ = (id) => document.getElementById(id);

  /* ---------- small helpers ---------- */

  function storageGet(name) {
    try {
      return window.localStorage.getItem(name);
    } catch (_) {
      return null; // storage disabled: the key lives for this page only
    }
  }

  function storageSet(name, value) {
    try {
      if (value === null) window.localStorage.removeItem(name);
      else window.localStorage.setItem(name, value);
    } catch (_) {
      /* storage disabled */
    }
  }

  /** An element with a class and text (text only: never HTML). */
  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function plural(count, word) {
    return `${count} ${word}${count === 1 ? "" : "s"}`;
  }

  function sourceLabel(source) {
    const name = source.source || "(unnamed document)";
    return source.page !== null && source.page !== undefined ? `${name}, page ${source.page}` : name;
  }

  /** Run an async handler; whatever it throws is shown on the page, never in the console. */
  function guard(fn) {
    return (...args) => {
      Promise.resolve()
        .then(() => fn(...args))
        .catch((err) => showError(err));
    };
  }

  /* ---------- errors ---------- */

  class ApiError extends Error {
    constructor(status, message, options = {}) {
      super(message);
      this.name = "ApiError";
      this.status = status;
      this.code = options.code || null;
      this.kind = options.kind || "http";
      this.retryAfter = options.retryAfter || null;
    }
  }

  function errorFromBody(status, text, retryAfter, statusText) {
    let message = statusText || "the request failed";
    let code = null;
    try {
      const body = JSON.parse(text);
      if (body && body.error) {
        message = body.error.message || message;
        code = body.error.code || null;
      } else if (body && typeof body.detail === "string") {
        message = body.detail;
      }
    } catch (_) {
      if (text && text.length < 300) message = text;
    }
    return new ApiError(status, message, { code, retryAfter });
  }

  async function errorFromResponse(response) {
    let text = "";
    try {
      text = await response.text();
    } catch (_) {
      /* the body is gone: the status says enough */
    }
    return errorFromBody(response.status, text, response.headers.get("Retry-After"), response.statusText);
  }

  function seconds(value) {
    const n = Number.parseInt(value, 10);
    return Number.isFinite(n) ? plural(n, "second") : "a few seconds";
  }

  /** A title and a readable explanation for any error. */
  function describe(err) {
    if (!(err instanceof ApiError)) {
      return { title: "Something went wrong", detail: String((err && err.message) || err) };
    }
    const msg = err.message;
    if (err.kind === "input") return { title: msg, detail: "" };
    if (err.kind === "network") {
      return {
        title: "Could not reach the server",
        detail: `Check that 'sealion serve' is running and try again. (${msg})`,
      };
    }
    if (err.kind === "stream") return { title: "The answer failed", detail: msg };
    switch (err.status) {
      case 401:
        return {
          title: "Wrong API key",
          detail:
            err.code === "invalid_api_key"
              ? "The server did not accept this API key. Enter another key in the API key box " +
                "(an administrator makes one with 'sealion keys create')."
              : `The server did not accept this API key. Enter another key. (${msg})`,
        };
      case 403:
        return { title: "Not allowed", detail: msg };
      case 404:
        return { title: "Not found", detail: msg };
      case 409:
        return { title: "Already exists", detail: msg };
      case 413:
        return { title: "Too large", detail: msg };
      case 415:
        return { title: "Unsupported file", detail: msg };
      case 429:
        return { title: "The server is busy", detail: `Try again in ${seconds(err.retryAfter)}. (${msg})` };
      case 503:
        return {
          title: "The server is not ready",
          detail: `Try again in ${seconds(err.retryAfter)}. (${msg})`,
        };
      default:
        if (err.status >= 400 && err.status < 500) return { title: "Request refused", detail: msg };
        return { title: `Server error (${err.status})`, detail: msg };
    }
  }

  function showError(err) {
    if (err && err.name === "AbortError") return;
    const { title, detail } = describe(err);
    $("error-title").textContent = title;
    $("error-detail").textContent = detail;
    const box = $("error");
    box.dataset.status = err instanceof ApiError ? String(err.status) : "";
    box.hidden = false;
    if (err instanceof ApiError && err.status === 401) keyRejected();
  }

  function hideError() {
    $("error").hidden = true;
    $("error-title").textContent = "";
    $("error-detail").textContent = "";
  }

  /* ---------- the API ---------- */

  async function api(path, options = {}) {
    if (!state.key) throw new ApiError(0, "Enter your API key first.", { kind: "input" });
    const headers = { Authorization: `Bearer ${state.key}` };
    let body;
    if (options.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(options.json);
    }
    let response;
    try {
      response = await fetch(path, {
        method: options.method || "GET",
        headers,
        body,
        signal: options.signal,
        cache: "no-store",
      });
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      throw new ApiError(0, (err && err.message) || "network error", { kind: "network" });
    }
    if (!response.ok) throw await errorFromResponse(response);
    return response;
  }

  const enc = encodeURIComponent;

  /** Read a server-sent event stream; onEvent(name, data) for each event (comments skipped). */
  async function readEvents(response, onEvent) {
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    const dispatch = (frame) => {
      let name = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (!line || line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let value = colon < 0 ? "" : line.slice(colon + 1);
        if (value.startsWith(" ")) value = value.slice(1);
        if (field === "event") name = value;
        else if (field === "data") data.push(value);
      }
      if (data.length) onEvent(name, data.join("\n"));
    };
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        buffer = buffer.replace(/\r\n|\r(?!$)/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          dispatch(frame);
        }
      }
    } catch (err) {
      if (err && err.name === "AbortError") throw err;
      throw new ApiError(0, "the connection was lost while the server was answering", { kind: "network" });
    }
    buffer += decoder.decode();
    if (buffer.trim()) dispatch(buffer.replace(/\r\n?/g, "\n"));
  }

  function parseJson(text) {
    try {
      return JSON.parse(text);
    } catch (_) {
      return null;
    }
  }

  /* ---------- server readiness ---------- */

  async function checkReady() {
    const badge = $("server-status");
    let next = 0;
    try {
      const response = await fetch("/ready", { cache: "no-store" });
      const body = parseJson(await response.text()) || {};
      if (response.ok) {
        badge.dataset.state = "ready";
        badge.textContent = body.model ? `Ready · ${body.model}` : "Ready";
        badge.title = "The model is loaded";
      } else if (body.status === "failed") {
        badge.dataset.state = "failed";
        badge.textContent = "Model failed to load";
        badge.title = body.error || "";
      } else {
        badge.dataset.state = "loading";
        badge.textContent = "Model loading…";
        next = 3000;
      }
    } catch (_) {
      badge.dataset.state = "offline";
      badge.textContent = "Server unreachable";
      next = 5000;
    }
    if (next) window.setTimeout(() => checkReady(), next);
  }

  /* ---------- the API key ---------- */

  function editKey() {
    $("key-form").hidden = false;
    $("change-key").hidden = true;
    const input = $("api-key");
    input.focus();
    input.select();
  }

  function keyRejected() {
    storageSet(KEY_STORE, null);
    editKey();
    const input = $("api-key");
    input.classList.add("invalid");
    input.setAttribute("aria-invalid", "true");
    const status = $("key-status");
    status.textContent = "This key was not accepted. Enter another one.";
    status.dataset.state = "invalid";
  }

  function keyAccepted() {
    const input = $("api-key");
    input.classList.remove("invalid");
    input.removeAttribute("aria-invalid");
    const status = $("key-status");
    status.textContent = "Key accepted and kept in this browser.";
    status.dataset.state = "ok";
    $("key-form").hidden = true;
    $("change-key").hidden = false;
  }

  async function saveKey(event) {
    event.preventDefault();
    const value = $("api-key").value.trim();
    if (!value) throw new ApiError(0, "Enter an API key.", { kind: "input" });
    if (!/^[\x21-\x7e]+$/.test(value)) {
      throw new ApiError(0, "An API key has no spaces or accented letters: check what you pasted.", {
        kind: "input",
      });
    }
    state.key = value;
    storageSet(KEY_STORE, value);
    hideError();
    await loadCollections();
  }

  /* ---------- collections and documents ---------- */

  async function loadCollections(select) {
    const response = await api("/v1/collections");
    const body = await response.json();
    keyAccepted();
    const found = Array.isArray(body.data) ? body.data : [];
    const list = $("collection");
    list.replaceChildren();
    if (!found.length) {
      list.append(new Option("No collections yet: create one", ""));
      list.disabled = true;
      setCollection("");
      return;
    }
    for (const item of found) {
      const option = new Option(`${item.name} · ${plural(item.chunks || 0, "chunk")}`, item.name);
      list.append(option);
    }
    list.disabled = false;
    const names = found.map((c) => c.name);
    const wanted = [select, state.collection, storageGet(COLLECTION_STORE)].find((n) => n && names.includes(n));
    const chosen = wanted || names[0];
    list.value = chosen;
    if (chosen !== state.collection) setCollection(chosen);
    else await loadDocuments();
  }

  function setCollection(name) {
    const changed = name !== state.collection;
    state.collection = name;
    if (name) storageSet(COLLECTION_STORE, name);
    $("chat-title").textContent = name ? `Ask “${name}”` : "Ask your documents";
    updateUploadButton();
    if (changed) newConversation();
    loadDocuments().catch((err) => showError(err));
  }

  async function loadDocuments() {
    const list = $("documents");
    if (!state.collection) {
      list.replaceChildren();
      return;
    }
    const response = await api(`/v1/collections/${enc(state.collection)}/documents`);
    const body = await response.json();
    const found = Array.isArray(body.data) ? body.data : [];
    list.replaceChildren();
    if (!found.length) {
      list.append(el("li", "documents-empty", "No documents yet: add some below."));
      return;
    }
    for (const doc of found) {
      const item = el("li", "document");
      item.append(el("span", "document-name", doc.source), el("span", "document-chunks", plural(doc.chunks || 0, "chunk")));
      item.title = doc.source;
      list.append(item);
    }
  }

  async function createCollection(event) {
    event.preventDefault();
    const input = $("new-collection");
    const name = input.value.trim();
    if (!name) throw new ApiError(0, "Type a name for the new collection.", { kind: "input" });
    hideError();
    await api("/v1/collections", { method: "POST", json: { name } });
    input.value = "";
    await loadCollections(name);
  }

  /* ---------- uploads ---------- */

  function updateUploadButton() {
    const files = $("files").files;
    $("upload").disabled = state.uploading || !state.collection || !files || !files.length;
    const chosen = $("chosen-files");
    chosen.textContent = files && files.length
      ? `${plural(files.length, "file")}: ${Array.from(files, (f) => f.name).join(", ")}`
      : "No files chosen.";
  }

  function setProgress(phase, fraction) {
    $("upload-progress").hidden = false;
    $("upload-phase").textContent = phase;
    const percent = Math.max(0, Math.min(100, Math.round(fraction * 100)));
    $("upload-percent").textContent = `${percent}%`;
    $("upload-bar").style.width = `${percent}%`;
  }

  const STAGES = {
    uploading: "Uploading…",
    queued: "Queued…",
    ingesting: "Reading and indexing…",
    done: "Done",
    failed: "Failed",
    cancelled: "Cancelled",
  };

  function renderUploadStatus(stage, job, extra) {
    const box = $("upload-status");
    box.dataset.stage = stage;
    box.replaceChildren();
    let summary = STAGES[stage] || stage;
    if (job && stage === "ingesting" && job.chunks_total) {
      summary += ` ${job.chunks_stored} of ${plural(job.chunks_total, "chunk")}`;
    }
    if (job && stage === "done") {
      const results = Object.values(job.results || {});
      const failed = results.filter((r) => String(r).startsWith("failed")).length;
      summary = `Done: ${plural(job.chunks_stored || 0, "chunk")} stored`;
      if (failed) summary += `, ${plural(failed, "file")} failed`;
    }
    box.append(el("p", `upload-summary stage-${stage}`, summary));
    if (job) {
      const list = el("ul", "file-results");
      const results = job.results || {};
      for (const name of job.files || Object.keys(results)) {
        const outcome = results[name] || (stage === "queued" || stage === "ingesting" ? "waiting" : "not stored");
        const kind = String(outcome).split(":")[0];
        const item = el("li", "file-result");
        item.dataset.result = kind;
        item.append(el("span", "file-name", name), el("span", "file-outcome", outcome));
        list.append(item);
      }
      box.append(list);
      if (job.error) box.append(el("p", "job-error", `The upload failed: ${job.error}`));
      if (stage === "queued" || stage === "ingesting") {
        const cancel = el("button", "secondary small", "Cancel");
        cancel.type = "button";
        cancel.id = "cancel-upload";
        cancel.addEventListener(
          "click",
          guard(async () => {
            cancel.disabled = true;
            await api(`/v1/jobs/${enc(job.id)}/cancel`, { method: "POST" });
          }),
        );
        box.append(cancel);
      }
    }
    if (extra) box.append(el("p", "job-error", extra));
  }

  function sendFiles(collection, files) {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      for (const file of files) form.append("files", file, file.name);
      const xhr = new XMLHttpRequest();
      xhr.open("POST", `/v1/collections/${enc(collection)}/documents`);
      xhr.setRequestHeader("Authorization", `Bearer ${state.key}`);
      xhr.upload.addEventListener("progress", (e) => {
        if (e.lengthComputable) setProgress("Uploading", e.loaded / e.total);
      });
      xhr.addEventListener("load", () => {
        if (xhr.status === 202 || xhr.status === 200) {
          const job = parseJson(xhr.responseText);
          if (job && job.id) resolve(job);
          else reject(new ApiError(xhr.status, "the server answered without a job", { kind: "stream" }));
        } else {
          reject(errorFromBody(xhr.status, xhr.responseText, xhr.getResponseHeader("Retry-After"), xhr.statusText));
        }
      });
      xhr.addEventListener("error", () => reject(new ApiError(0, "the upload did not reach the server", { kind: "network" })));
      xhr.addEventListener("abort", () => reject(new ApiError(0, "the upload was interrupted", { kind: "network" })));
      xhr.send(form);
    });
  }

  function showJob(job) {
    const stage = job.stage || "queued";
    if (stage === "ingesting" || stage === "queued") setProgress("Indexing", job.progress || 0);
    else if (stage === "done") setProgress("Indexed", 1);
    else $("upload-progress").hidden = true; // failed or cancelled: the status says why
    renderUploadStatus(stage, job);
  }

  const TERMINAL = new Set(["done", "failed", "cancelled"]);

  /** Follow a job to its end: its event stream, or polling when the stream fails. */
  async function followJob(job) {
    showJob(job);
    let last = job;
    if (TERMINAL.has(last.stage)) return last;
    try {
      const response = await api(`/v1/jobs/${enc(job.id)}/events`);
      await readEvents(response, (name, data) => {
        const snapshot = parseJson(data);
        if ((name === "progress" || name === "end") && snapshot && snapshot.id) {
          last = snapshot;
          showJob(snapshot);
        }
      });
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) throw err;
      /* fall back to polling below */
    }
    while (!TERMINAL.has(last.stage)) {
      await new Promise((r) => window.setTimeout(r, POLL_MS));
      const response = await api(`/v1/jobs/${enc(job.id)}`);
      last = await response.json();
      showJob(last);
    }
    return last;
  }

  async function upload(event) {
    event.preventDefault();
    const input = $("files");
    const files = Array.from(input.files || []);
    if (!files.length) throw new ApiError(0, "Choose one or more files first.", { kind: "input" });
    if (!state.collection) throw new ApiError(0, "Choose or create a collection first.", { kind: "input" });
    const collection = state.collection;
    hideError();
    state.uploading = true;
    updateUploadButton();
    renderUploadStatus("uploading", null);
    setProgress("Uploading", 0);
    try {
      const job = await sendFiles(collection, files);
      input.value = "";
      await followJob(job);
      if (collection === state.collection) await loadCollections(collection);
    } catch (err) {
      const { title, detail } = describe(err);
      renderUploadStatus("failed", null, detail ? `${title}: ${detail}` : title);
      $("upload-progress").hidden = true;
      throw err;
    } finally {
      state.uploading = false;
      updateUploadButton();
    }
  }

  /* ---------- the conversation ---------- */

  let emptyNote = null; // the hint shown while the conversation is empty (kept when cleared)

  function newConversation() {
    if (state.asking) state.asking.abort();
    state.history = [];
    emptyNote.hidden = false;
    $("messages").replaceChildren(emptyNote);
    closePassage();
  }

  function setBusy(busy) {
    $("ask").disabled = busy;
    $("stop").hidden = !busy;
    document.body.classList.toggle("busy", busy);
  }

  /** Answer text with [n] markers as buttons that open passage n. */
  function renderAnswer(target, text, sources) {
    target.replaceChildren();
    let at = 0;
    CITATION.lastIndex = 0;
    let match;
    while ((match = CITATION.exec(text)) !== null) {
      if (match.index > at) target.append(document.createTextNode(text.slice(at, match.index)));
      for (const part of match[1].split(/[,;]/)) {
        const number = Number.parseInt(part.trim(), 10);
        const source = sources.get(number);
        if (!source) {
          target.append(document.createTextNode(`[${number}]`));
          continue;
        }
        const button = el("button", "citation", `[${number}]`);
        button.type = "button";
        button.dataset.number = String(number);
        button.title = sourceLabel(source);
        button.setAttribute("aria-label", `Passage ${number}: ${sourceLabel(source)}`);
        button.addEventListener("click", () => openPassage(source, button));
        target.append(button);
      }
      at = match.index + match[0].length;
    }
    if (at < text.length) target.append(document.createTextNode(text.slice(at)));
  }

  function renderSources(turn, cited) {
    const list = turn.sourcesList;
    list.replaceChildren();
    const all = Array.from(turn.sources.values()).sort((a, b) => a.number - b.number);
    turn.sourcesBox.hidden = !all.length;
    turn.sourcesCount.textContent = all.length ? ` (${all.length})` : "";
    for (const source of all) {
      const item = el("li", "source-item");
      const button = el("button", "source");
      button.type = "button";
      button.dataset.number = String(source.number);
      button.dataset.source = source.source || "";
      if (cited && cited.has(source.number)) button.classList.add("cited");
      button.append(el("span", "source-number", `[${source.number}]`), el("span", "source-name", sourceLabel(source)));
      button.addEventListener("click", () => openPassage(source, button));
      item.append(button);
      list.append(item);
    }
  }

  function openPassage(source, trigger) {
    const panel = $("passage");
    $("passage-title").textContent = `Passage [${source.number}]`;
    $("passage-source").textContent = sourceLabel(source);
    $("passage-text").textContent = source.text || "";
    panel.dataset.number = String(source.number);
    panel.hidden = false;
    document.querySelector(".layout").classList.add("with-passage");
    if (state.activeCitation) state.activeCitation.classList.remove("active");
    state.activeCitation = trigger || null;
    if (trigger) trigger.classList.add("active");
    panel.scrollTop = 0;
  }

  function closePassage() {
    $("passage").hidden = true;
    document.querySelector(".layout").classList.remove("with-passage");
    if (state.activeCitation) state.activeCitation.classList.remove("active");
    state.activeCitation = null;
  }

  const STATUS_TEXT = {
    grounded: ["Verified", "Every claim was checked against its passages"],
    revised: ["Revised", "Claims the passages do not support were removed"],
    declined: ["No answer", "The documents do not answer this question"],
    blocked: ["Refused", "A safety check refused this turn"],
  };
  const BLOCKED_AT = {
    input: "The safety check refused the question; nothing was generated.",
    output: "The safety check refused the answer; it was not shown.",
  };
  const DECLINED_BY = {
    model: "The model found no answer in the passages.",
    verifier: "No claim of the answer could be verified against its passages.",
    no_sources: "No passage matched the question.",
  };

  function addTurn(question) {
    const messages = $("messages");
    emptyNote.hidden = true;

    const user = el("article", "message user");
    user.append(el("div", "bubble", question));
    user.lastChild.dir = "auto";

    const bot = el("article", "message assistant");
    bot.dataset.state = "streaming";
    const phase = el("p", "phase", "Searching your documents…");
    const query = el("p", "query");
    query.hidden = true;
    const details = el("details", "reasoning-box");
    details.hidden = true;
    const summary = el("summary", "", "Reasoning");
    const reasoning = el("div", "reasoning");
    reasoning.dir = "auto";
    details.append(summary, reasoning);
    const answer = el("div", "answer");
    answer.dir = "auto";
    const removed = el("div", "removed");
    removed.hidden = true;
    const footer = el("div", "meta");
    const badge = el("span", "badge");
    badge.hidden = true;
    footer.append(badge);
    const sourcesBox = el("details", "sources-box");
    sourcesBox.hidden = true;
    const sourcesSummary = el("summary", "", "Sources");
    const sourcesCount = el("span", "count");
    sourcesSummary.append(sourcesCount);
    const sourcesList = el("ol", "sources");
    sourcesBox.append(sourcesSummary, sourcesList);
    bot.append(phase, query, details, answer, removed, footer, sourcesBox);

    messages.append(user, bot);
    bot.scrollIntoView({ block: "nearest" });
    return {
      question,
      node: bot,
      phase,
      query,
      details,
      reasoning,
      answer,
      removed,
      badge,
      sourcesBox,
      sourcesCount,
      sourcesList,
      sources: new Map(),
      answerText: "",
      answered: false,
    };
  }

  function scrollToEnd() {
    const messages = $("messages");
    const nearEnd = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 160;
    if (nearEnd) messages.scrollTop = messages.scrollHeight;
  }

  function onStreamEvent(turn, name, payload) {
    switch (name) {
      case "query":
        if (payload.text && payload.text !== turn.question) {
          turn.query.textContent = `Searched for: ${payload.text}`;
          turn.query.hidden = false;
        }
        break;
      case "sources":
        for (const source of payload.sources || []) turn.sources.set(source.number, source);
        renderSources(turn, null);
        turn.phase.textContent = $("thinking").checked ? "Thinking…" : "Writing the answer…";
        break;
      case "reasoning":
        if (turn.details.hidden) {
          turn.details.hidden = false;
          turn.details.open = !turn.answered;
        }
        turn.reasoning.append(document.createTextNode(payload.text || ""));
        break;
      case "answer":
        if (!turn.answered) {
          turn.answered = true;
          turn.details.open = false;
          turn.phase.textContent = "Writing and checking the answer…";
        }
        turn.answerText += payload.text || "";
        renderAnswer(turn.answer, turn.answerText, turn.sources);
        break;
      case "verdict":
        turn.verdict = payload.text || "";
        break;
      default:
        break;
    }
    scrollToEnd();
  }

  function finishTurn(turn, result) {
    for (const source of result.sources || []) turn.sources.set(source.number, source);
    for (const source of result.citations || []) {
      if (!turn.sources.has(source.number)) turn.sources.set(source.number, source);
    }
    const cited = new Set((result.citations || []).map((c) => c.number));
    renderSources(turn, cited);
    const status = result.status || "grounded";
    turn.node.dataset.status = status;
    if (result.declined_by) turn.node.dataset.declinedBy = result.declined_by;
    if (result.blocked_stage) turn.node.dataset.blockedStage = result.blocked_stage;
    // the verified answer (or the decline message) replaces what streamed
    renderAnswer(turn.answer, result.answer || "", turn.sources);
    if (result.language) turn.answer.lang = result.language;
    turn.answer.classList.toggle("declined", status === "declined");
    turn.answer.classList.toggle("refused", status === "blocked");
    if (status === "blocked") {
      // a refusal is the whole turn: nothing of the model's, so no reasoning and no passages
      turn.details.hidden = true;
      turn.reasoning.textContent = "";
      turn.sourcesBox.hidden = true;
    }
    if (turn.details.hidden && result.reasoning) {
      turn.reasoning.textContent = result.reasoning;
      turn.details.hidden = false;
    }
    turn.details.open = false;
    const removedClaims = result.removed_claims || [];
    if (removedClaims.length) {
      turn.removed.replaceChildren();
      turn.removed.append(el("p", "removed-label", "Removed: not supported by the sources"));
      const list = el("ul", "removed-list");
      for (const claim of removedClaims) {
        const item = el("li");
        item.append(el("del", "removed-claim", claim));
        list.append(item);
      }
      turn.removed.append(list);
      turn.removed.hidden = false;
    }
    const [label, explanation] = STATUS_TEXT[status] || [status, ""];
    turn.badge.textContent = label;
    turn.badge.className = `badge status-${status}`;
    turn.badge.title =
      status === "declined"
        ? DECLINED_BY[result.declined_by] || explanation
        : status === "blocked"
          ? `${BLOCKED_AT[result.blocked_stage] || explanation} (${result.blocked_by || "guard"})`
          : explanation;
    const withheld = status === "blocked" ? [] : result.withheld || [];
    if (withheld.length) {
      // beside the sources, not inside their folded box: seen without opening anything
      turn.sourcesBox.after(el("p", "withheld", `Withheld by the safety check: ${withheld.join(", ")}`));
    }
    turn.badge.hidden = false;
    turn.phase.remove();
    turn.node.dataset.state = "done";
    scrollToEnd();
  }

  function failTurn(turn, err, stopped) {
    turn.phase.remove();
    turn.node.dataset.state = stopped ? "stopped" : "error";
    turn.details.open = false;
    const note = stopped ? "Stopped." : (() => {
      const { title, detail } = describe(err);
      return detail ? `${title}: ${detail}` : title;
    })();
    turn.node.append(el("p", "turn-error", note));
  }

  async function ask(event) {
    if (event) event.preventDefault();
    if (state.asking) return;
    const input = $("question");
    const question = input.value.trim();
    if (!question) return;
    if (!state.key) throw new ApiError(0, "Enter your API key first.", { kind: "input" });
    if (!state.collection) throw new ApiError(0, "Choose or create a collection first.", { kind: "input" });
    hideError();
    input.value = "";
    const turn = addTurn(question);
    const controller = new AbortController();
    state.asking = controller;
    setBusy(true);
    const body = {
      question,
      history: state.history.slice(),
      stream: true,
      thinking: $("thinking").checked,
    };
    let result = null;
    let failure = null;
    try {
      const response = await api(`/v1/collections/${enc(state.collection)}/ask`, {
        method: "POST",
        json: body,
        signal: controller.signal,
      });
      await readEvents(response, (name, data) => {
        const payload = parseJson(data);
        if (!payload) return;
        if (name === "result") result = payload;
        else if (name === "error") {
          const e = payload.error || {};
          failure = new ApiError(0, e.message || "the server stopped answering", { kind: "stream", code: e.code });
        } else onStreamEvent(turn, name, payload);
      });
      if (!result && !failure) {
        failure = new ApiError(0, "the answer ended before its result arrived", { kind: "stream" });
      }
    } catch (err) {
      failure = err;
    } finally {
      state.asking = null;
      setBusy(false);
    }
    if (result) {
      finishTurn(turn, result);
      state.history.push({ role: "user", content: question }, { role: "assistant", content: result.answer || "" });
      return;
    }
    const stopped = failure && failure.name === "AbortError";
    if (turn.node.isConnected) failTurn(turn, failure, stopped);
    if (!input.value) input.value = question; // to ask again
    if (!stopped) showError(failure);
  }

  /* ---------- wiring ---------- */

  function init() {
    emptyNote = $("empty");
    $("error-close").addEventListener("click", hideError);
    $("key-form").addEventListener("submit", guard(saveKey));
    $("change-key").addEventListener("click", editKey);
    $("create-form").addEventListener("submit", guard(createCollection));
    $("refresh-collections").addEventListener("click", guard(() => loadCollections()));
    $("collection").addEventListener("change", (e) => setCollection(e.target.value));
    $("files").addEventListener("change", updateUploadButton);
    $("upload-form").addEventListener("submit", guard(upload));
    $("ask-form").addEventListener("submit", guard(ask));
    $("stop").addEventListener("click", () => state.asking && state.asking.abort());
    $("new-chat").addEventListener("click", () => newConversation());
    $("passage-close").addEventListener("click", closePassage);
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && !$("passage").hidden) closePassage();
    });
    const question = $("question");
    question.addEventListener("keydown", (e) => {
      // Enter sends; Shift+Enter is a new line; never while an input method is composing
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        guard(ask)();
      }
    });
    const thinking = $("thinking");
    thinking.checked = storageGet(THINKING_STORE) !== "off";
    thinking.addEventListener("change", () => storageSet(THINKING_STORE, thinking.checked ? "on" : "off"));

    checkReady();
    const stored = storageGet(KEY_STORE);
    if (stored) {
      state.key = stored;
      $("api-key").value = stored;
      guard(() => loadCollections())();
    } else {
      $("key-status").textContent = "Enter the API key you were given ('sealion keys create' makes one).";
      $("api-key").focus();
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
