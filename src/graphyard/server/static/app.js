// The chat page: threads, streamed answers, tiers and costs, approvals, history.
// Talks only to this server's SDK-compatible API (see api.js); builds DOM with view.js,
// which never turns server text into markup.

import { Api, ApiError, storedKey, storeKey, uuid4 } from "./api.js";
import { answerStore, ledgerTotal, pendingInterrupts, rememberAnswer, threadTitle } from "./data.js";
import {
  approvalCard,
  contentText,
  el,
  formatTime,
  formatTokens,
  formatUsd,
  historyItem,
  messageItem,
  messageRole,
  replaySummary,
  setMessageMeta,
} from "./view.js";

const $ = (id) => document.getElementById(id);
// "values" is left out on purpose: it resends the whole state after every step, and the
// page reads the state once when the run ends. "tasks" says which node is running.
const STREAM_MODES = ["messages-tuple", "updates", "tasks"];
const THREAD_ID = /^[A-Za-z0-9._:-]{1,256}$/;
const NODE_LABELS = {
  router: "choosing a tier",
  trim: "fitting the context window",
  planner: "thinking",
  executor: "running tools",
  critic: "checking the answer",
};

const state = {
  info: null,
  assistantId: "agent",
  features: { cost: false, replay: false },
  threadId: null,
  thread: null,
  values: null,
  interrupts: [],
  threads: [],
  streaming: false,
  controller: null,
};

const api = new Api({
  onUnauthorized: () =>
    askForKey(storedKey() ? "The server refused this API key. Enter a valid one." : "This server needs an API key."),
});

// --- small helpers ------------------------------------------------------------------------

function path(...parts) {
  return "/" + parts.map((p) => encodeURIComponent(p)).join("/");
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
  $("error").textContent = "";
}

function report(error) {
  if (error instanceof ApiError && error.status === 401) {
    showError("Enter your API key to continue.");
  } else if (error && error.name === "AbortError") {
    // the user moved on; nothing to say
  } else {
    showError(error && error.message ? error.message : String(error));
  }
}

function isNarrow() {
  return window.matchMedia("(max-width: 760px)").matches;
}

// --- API key ------------------------------------------------------------------------------

function askForKey(reason) {
  const dialog = $("key-dialog");
  $("key-reason").textContent = reason;
  $("key-input").value = storedKey();
  if (!dialog.open) dialog.showModal();
  $("key-input").focus();
}

async function afterKeyChange() {
  clearError();
  await loadThreads();
  const threadId = state.threadId || threadFromHash();
  if (threadId) await openThread(threadId, { quiet: true });
}

// --- threads ------------------------------------------------------------------------------

async function loadThreads() {
  const status = $("status-filter").value;
  const body = { limit: 100, sort_by: "updated_at", sort_order: "desc" };
  if (status) body.status = status;
  try {
    state.threads = await api.post("/threads/search", body);
  } catch (error) {
    report(error);
    return;
  }
  renderThreads();
}

function renderThreads() {
  const query = $("search-input").value.trim().toLowerCase();
  const list = $("thread-list");
  const shown = state.threads.filter((thread) => {
    if (!query) return true;
    const messages = (thread.values && thread.values.messages) || [];
    const text = [thread.thread_id, threadTitle(thread), ...messages.map((m) => contentText(m.content))]
      .join("\n")
      .toLowerCase();
    return text.includes(query);
  });
  list.replaceChildren(
    ...shown.map((thread) => {
      const current = thread.thread_id === state.threadId;
      const status = thread.status === "interrupted" ? "waiting for approval" : thread.status;
      return el(
        "li",
        {},
        el(
          "button",
          {
            type: "button",
            className: "thread",
            "data-thread-id": thread.thread_id,
            "aria-current": current ? "page" : null,
            onclick: () => openThread(thread.thread_id, { fromList: true }),
          },
          el("span", { className: "thread-title", text: threadTitle(thread) }),
          el("span", { className: "thread-meta", text: `${status} · ${formatTime(thread.updated_at)}` }),
        ),
      );
    }),
  );
  const note = $("thread-list-note");
  note.hidden = shown.length > 0;
  note.textContent = state.threads.length ? "No thread matches." : "No threads yet.";
}

function setCurrentThread(threadId) {
  state.threadId = threadId;
  const hash = threadId ? `#thread=${encodeURIComponent(threadId)}` : "";
  if (location.hash !== hash) history.replaceState(null, "", hash || location.pathname);
  for (const button of document.querySelectorAll("#thread-list .thread")) {
    if (button.dataset.threadId === threadId) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
}

function threadFromHash() {
  const match = /^#thread=(.+)$/.exec(location.hash);
  if (!match) return null;
  const id = decodeURIComponent(match[1]);
  return THREAD_ID.test(id) ? id : null;
}

function newThread() {
  if (state.streaming) return;
  setCurrentThread(null);
  state.thread = null;
  state.values = null;
  state.interrupts = [];
  $("thread-title").textContent = "New conversation";
  $("messages").replaceChildren();
  renderApprovals();
  renderCost();
  $("history-list").replaceChildren();
  setRunStatus("Ready");
  clearError();
  closePanels();
  $("composer-input").focus();
}

async function openThread(threadId, { fromList = false, quiet = false } = {}) {
  if (state.streaming && threadId !== state.threadId) return;
  if (!quiet) clearError();
  let thread;
  let snapshot;
  try {
    [thread, snapshot] = await Promise.all([
      api.get(path("threads", threadId)),
      api.get(path("threads", threadId, "state")),
    ]);
  } catch (error) {
    if (error instanceof ApiError && error.status === 404) {
      showError("That thread does not exist (or is not yours).");
      setCurrentThread(null);
    } else report(error);
    return;
  }
  setCurrentThread(threadId);
  state.thread = thread;
  renderSnapshot(snapshot);
  setRunStatus(statusAfter(snapshot));
  loadHistory();
  loadLedgerCost();
  if (thread.status === "busy") joinRunningRun(threadId);
  if (fromList) {
    closePanels();
    $("composer-input").focus();
  }
}

// A run still going on this thread (the page was reloaded mid-answer, or another tab asked):
// follow its stream from the start, as the server keeps every event of a run.
async function joinRunningRun(threadId) {
  try {
    const [run] = await api.get(`${path("threads", threadId, "runs")}?status=running&limit=1`);
    if (run && threadId === state.threadId) {
      await runStream(null, { url: path("threads", threadId, "runs", run.run_id, "stream"), label: "Following the run in progress" });
    }
  } catch (error) {
    report(error);
  }
}

async function stopRun() {
  if (!state.streaming || !state.runId || !state.threadId) return;
  state.stopped = true;
  try {
    await api.post(`${path("threads", state.threadId, "runs", state.runId, "cancel")}?action=interrupt`);
  } catch (error) {
    report(error);
  }
}

function statusAfter(snapshot) {
  return state.interrupts.length ? "Waiting for approval" : snapshot && snapshot.next && snapshot.next.length ? `Paused before ${snapshot.next.join(", ")}` : "Ready";
}

function renderSnapshot(snapshot) {
  state.values = snapshot.values || {};
  state.interrupts = pendingInterrupts(snapshot);
  $("thread-title").textContent = threadTitle(state.thread || { thread_id: state.threadId, values: state.values });
  renderMessages(state.values.messages || []);
  renderApprovals();
  renderCost();
}

function renderMessages(messages) {
  const answers = answerStore(state.threadId);
  const items = messages
    .filter((m) => ["human", "ai", "tool"].includes(messageRole(m)))
    .map((message) => {
      const item = messageItem(message);
      if (messageRole(message) === "ai") {
        const facts = answers[message.id] || {};
        setMessageMeta(item, { tier: facts.tier, usd: facts.usd, usage: message.usage_metadata });
      }
      return item;
    });
  $("messages").replaceChildren(...items);
  scrollToEnd();
}

function scrollToEnd() {
  const list = $("messages");
  list.scrollTop = list.scrollHeight;
}

// --- tier, node and cost ------------------------------------------------------------------

function setRunStatus(text, tier) {
  $("run-node").textContent = text;
  const badge = $("run-tier");
  if (tier) {
    badge.textContent = `tier ${tier}`;
    badge.hidden = false;
    $("tier-current").textContent = tier;
  } else if (tier === null) {
    badge.hidden = true;
  }
}

function renderCost(lastAnswerUsd) {
  const values = state.values || {};
  $("tier-current").textContent = values.tier || "–";
  $("cost-thread").textContent = typeof values.cost_usd === "number" ? formatUsd(values.cost_usd) : "–";
  $("tokens-thread").textContent = formatTokens(values.usage);
  if (lastAnswerUsd !== undefined) $("cost-answer").textContent = formatUsd(lastAnswerUsd);
  else if (!state.threadId) $("cost-answer").textContent = "–";
  $("cost-source").textContent = state.threadId ? "From the thread's state." : "";
  if (values.tier) setRunStatus($("run-node").textContent, values.tier);
  else setRunStatus($("run-node").textContent, null);
}

// The ledger (GET /threads/{id}/cost, when the server has it) counts every model call; its
// per-run figures replace the page's own state-difference estimate of each answer's cost.
async function loadLedgerCost(runId) {
  if (!state.features.cost || !state.threadId) return;
  const threadId = state.threadId;
  try {
    const data = await api.get(path("threads", threadId, "cost"));
    const total = ledgerTotal(data);
    if (total === undefined || threadId !== state.threadId) return;
    // The ledger writes in the background: until it has caught up with the run that just
    // ended it reads low, and the state's own figure is the better one.
    const fromState = (state.values && state.values.cost_usd) || 0;
    if (total + 1e-12 < fromState) return;
    $("cost-thread").textContent = formatUsd(total);
    $("cost-source").textContent = "From the cost ledger (every model call of this thread).";
    const byRun = (data && data.by_run) || {};
    const answers = answerStore(threadId);
    for (const item of document.querySelectorAll("#messages .msg-ai")) {
      const facts = answers[item.dataset.messageId];
      const usd = facts && facts.runId ? ledgerTotal(byRun[facts.runId]) : undefined;
      if (usd === undefined) continue;
      const message = (state.values.messages || []).find((m) => m.id === item.dataset.messageId);
      setMessageMeta(item, { tier: facts.tier, usd, usage: message && message.usage_metadata });
    }
    const lastRun = runId && ledgerTotal(byRun[runId]);
    if (typeof lastRun === "number") $("cost-answer").textContent = formatUsd(lastRun);
  } catch (error) {
    if (!(error instanceof ApiError) || error.status !== 404) report(error);
    // 404: no ledger here (or nothing recorded yet); the state's figure stays
  }
}

// --- approvals ----------------------------------------------------------------------------

function renderApprovals() {
  const list = $("approval-list");
  const interrupts = state.interrupts || [];
  list.replaceChildren(
    ...interrupts.map((interrupt) =>
      approvalCard(interrupt, (decision) => {
        const resume = interrupts.length > 1 && interrupt.id ? { [interrupt.id]: decision } : decision;
        runStream({ command: { resume } }, { label: decision && decision.action === "reject" ? "Rejected" : "Approved" });
      }),
    ),
  );
  $("approvals").hidden = interrupts.length === 0;
  for (const button of list.querySelectorAll("button")) button.disabled = state.streaming;
}

// --- history, fork, replay ----------------------------------------------------------------

async function loadHistory() {
  if (!state.threadId) return;
  const threadId = state.threadId;
  let checkpoints;
  try {
    checkpoints = await api.post(path("threads", threadId, "history"), { limit: 50 });
  } catch (error) {
    report(error);
    return;
  }
  if (threadId !== state.threadId) return;
  const actions = { onFork: fork, onReplay: state.features.replay ? replay : null };
  $("history-list").replaceChildren(...checkpoints.map((checkpoint) => historyItem(checkpoint, actions)));
}

async function fork(ref, step) {
  if (state.streaming || !state.threadId) return;
  try {
    await api.post(path("threads", state.threadId, "state"), {
      checkpoint: { checkpoint_id: ref.checkpoint_id, checkpoint_ns: ref.checkpoint_ns || "" },
      values: null,
      as_node: "__copy__",
    });
  } catch (error) {
    report(error);
    return;
  }
  await openThread(state.threadId, { quiet: true });
  setRunStatus(`Forked from step ${step}: the next message continues from there`);
}

// POST /threads/{id}/replay (graphyard's extension; the button shows only when the server
// has it): re-runs from the checkpoint on the recorded model outputs, as a new branch.
async function replay(ref, step) {
  if (!state.threadId) return;
  $("replay-result").hidden = true;
  await runStream(
    { checkpoint_id: ref.checkpoint_id, stream_mode: ["updates"] },
    { url: path("threads", state.threadId, "replay"), raw: true, label: `Replay from step ${step}` },
  );
}

function renderReplayResult(result) {
  const box = $("replay-result");
  const { summary, diff } = replaySummary(result);
  $("replay-summary").textContent = summary;
  $("replay-diff").textContent = diff;
  $("replay-diff").hidden = !diff;
  box.hidden = false;
  box.scrollIntoView({ block: "nearest" });
}

// --- sending and streaming ----------------------------------------------------------------

async function send(text) {
  if (state.streaming) return;
  clearError();
  if (!state.threadId) {
    try {
      const thread = await api.post("/threads", { metadata: { title: text.slice(0, 80) } });
      state.thread = thread;
      state.values = {};
      setCurrentThread(thread.thread_id);
      $("thread-title").textContent = threadTitle(thread);
    } catch (error) {
      report(error);
      return;
    }
  }
  const input = $("composer-input");
  input.value = "";
  // The message carries its id from here on, as SDK clients send it: the stored message,
  // its checkpoints and a replay of this turn all name the same message.
  const message = { type: "human", content: text, id: uuid4() };
  $("messages").append(messageItem(message));
  scrollToEnd();
  await runStream({ input: { messages: [message] } });
  // Refused before it was stored (rate limit, budget, a server error): the state no longer
  // shows the message, so hand the text back instead of losing what the user typed.
  const stored = document.querySelector(`#messages [data-message-id="${CSS.escape(message.id)}"]`);
  if (!stored && !input.value) input.value = text;
}

function setStreaming(on) {
  state.streaming = on;
  $("messages").setAttribute("aria-busy", on ? "true" : "false");
  $("send").disabled = on;
  $("stop").hidden = !on;
  $("new-thread").disabled = on;
  for (const button of document.querySelectorAll("#approval-list button, #history-list button")) {
    button.disabled = on;
  }
}

// Run on the current thread and render its stream as it comes. `body` holds input or command.
// `raw` sends body as it is (replay); a null body with `url` joins a running run's stream.
async function runStream(body, { url, raw = false, label } = {}) {
  if (state.streaming || !state.threadId) return;
  const threadId = state.threadId;
  const costBefore = (state.values && state.values.cost_usd) || 0;
  let finalValues = null;
  let runId = null;
  let tier = null;
  let failed = null;
  const bubbles = new Map();
  state.stopped = false;
  const controller = new AbortController();
  state.controller = controller;
  state.interrupts = [];
  renderApprovals();
  setStreaming(true);
  setRunStatus(label ? `${label}: starting` : "Starting");

  const bubbleFor = (message) => {
    const key = message.id || "current";
    let item = bubbles.get(key);
    if (!item) {
      // already on the page (rendered from the state, or a joined stream replaying from its
      // start): its text is rebuilt from this stream's chunks
      item = document.querySelector(`#messages [data-message-id="${CSS.escape(key)}"]`);
      if (item) item.querySelector(".text").textContent = "";
    }
    if (!item) {
      item = messageItem({ ...message, content: "" });
      item.classList.add("streaming");
      $("messages").append(item);
    }
    bubbles.set(key, item);
    return item;
  };

  try {
    const request = raw || body === null
      ? body
      : { assistant_id: state.assistantId, stream_mode: STREAM_MODES, multitask_strategy: "reject", ...body };
    for await (const { event, data } of api.stream(url || path("threads", threadId, "runs", "stream"), request, { signal: controller.signal })) {
      const mode = event.split("|")[0];
      if (mode === "metadata" && data && data.run_id) {
        runId = data.run_id;
        state.runId = runId;
      } else if (mode === "messages" && Array.isArray(data)) {
        const [message, meta] = data;
        if (!message || messageRole(message) === "human") continue;
        if (meta && meta.graphyard_tier) tier = meta.graphyard_tier;
        const item = bubbleFor(message);
        const text = item.querySelector(".text");
        if (message.type === "AIMessageChunk") text.append(contentText(message.content));
        else text.textContent = contentText(message.content);
        if (tier) setRunStatus($("run-node").textContent, tier);
        scrollToEnd();
      } else if (mode === "tasks" && data && data.name) {
        if ("triggers" in data || ("input" in data && !("result" in data))) {
          const what = NODE_LABELS[data.name];
          setRunStatus(`Running ${data.name}${what ? ` (${what})` : ""}`);
        }
      } else if (mode === "updates" && data && typeof data === "object") {
        for (const [node, update] of Object.entries(data)) {
          if (node === "__interrupt__") {
            state.interrupts = Array.isArray(update) ? update : [];
          } else if (update && typeof update === "object" && update.tier) {
            tier = update.tier;
            setRunStatus($("run-node").textContent, tier);
          }
        }
      } else if (mode === "values" && data && typeof data === "object" && !Array.isArray(data)) {
        finalValues = data;
        if (data.tier) tier = data.tier;
      } else if (mode === "replay" && data) {
        setRunStatus(`${label || "Replay"}: ${data.mode || "recorded"} outputs, no model calls`);
      } else if (mode === "replay/result" && data) {
        renderReplayResult(data);
      } else if (mode === "error") {
        failed = data;
      } else if (mode === "end") {
        break;
      }
    }
  } catch (error) {
    failed = error;
  } finally {
    state.controller = null;
    state.runId = null;
    for (const item of bubbles.values()) item.classList.remove("streaming");
    setStreaming(false);
  }

  if (threadId !== state.threadId) return;
  // The stream showed the answer as it came; the thread's state is the truth (ids,
  // revisions the critic removed, pending approvals), so render that now.
  let snapshot = null;
  try {
    snapshot = await api.get(path("threads", threadId, "state"));
  } catch (error) {
    report(error);
  }
  const values = (snapshot && snapshot.values) || finalValues || state.values || {};
  const messages = values.messages || [];
  const last = messages[messages.length - 1];
  const usd = typeof values.cost_usd === "number" ? values.cost_usd - costBefore : undefined;
  if (last && messageRole(last) === "ai" && last.id && !failed && !raw) {
    rememberAnswer(threadId, last.id, { tier: values.tier || tier, usd, runId });
  }
  if (snapshot) renderSnapshot(snapshot);
  renderCost(failed || raw ? undefined : usd);
  if (failed) {
    const message = failed instanceof Error ? failed.message : failed.message || failed.error || JSON.stringify(failed);
    showError(`${label || "The run"} failed: ${message}`);
    setRunStatus("Error");
    if (failed instanceof ApiError && failed.status === 401) report(failed);
  } else {
    setRunStatus(state.stopped ? "Stopped" : statusAfter(snapshot), values.tier || tier);
  }
  if (state.interrupts.length) {
    const first = document.querySelector("#approval-list button");
    if (first) first.focus();
  }
  loadHistory();
  loadLedgerCost(runId);
  refreshThreadsAfterRun(threadId);
}

// The stream ends a moment before the server records the run as over: wait for the
// thread to leave "busy" (briefly) so the list shows where it really stands.
async function refreshThreadsAfterRun(threadId) {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    try {
      const thread = await api.get(path("threads", threadId));
      if (thread.status !== "busy") break;
    } catch {
      break;
    }
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
  await loadThreads();
}

// --- layout on small screens --------------------------------------------------------------

function togglePanel(panelId, buttonId, open) {
  const panel = $(panelId);
  const button = $(buttonId);
  const show = open ?? !panel.classList.contains("open");
  panel.classList.toggle("open", show);
  button.setAttribute("aria-expanded", show ? "true" : "false");
  if (show) {
    const first = panel.querySelector("button, input, select");
    if (first) first.focus();
  }
}

function closePanels() {
  if (!isNarrow()) return;
  for (const [panel, button] of [["sidebar", "threads-toggle"], ["details", "details-toggle"]]) {
    $(panel).classList.remove("open");
    $(button).setAttribute("aria-expanded", "false");
  }
}

// --- start --------------------------------------------------------------------------------

async function detectFeatures() {
  try {
    const response = await fetch("/openapi.json", { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const paths = (await response.json()).paths || {};
    state.features.cost = "/threads/{thread_id}/cost" in paths;
    state.features.replay = "/threads/{thread_id}/replay" in paths;
  } catch {
    // no schema: the extensions stay off
  }
}

function wire() {
  // the skip link moves focus without changing the address (which names the thread)
  document.querySelector(".skip-link").addEventListener("click", (event) => {
    event.preventDefault();
    $("composer-input").focus();
  });
  $("composer").addEventListener("submit", (event) => {
    event.preventDefault();
    const text = $("composer-input").value.trim();
    if (text) send(text);
  });
  $("composer-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("new-thread").addEventListener("click", newThread);
  $("stop").addEventListener("click", stopRun);
  $("search-form").addEventListener("submit", (event) => event.preventDefault());
  $("search-input").addEventListener("input", renderThreads);
  $("status-filter").addEventListener("change", loadThreads);
  $("history-refresh").addEventListener("click", loadHistory);
  $("threads-toggle").addEventListener("click", () => togglePanel("sidebar", "threads-toggle"));
  $("details-toggle").addEventListener("click", () => togglePanel("details", "details-toggle"));
  $("key-button").addEventListener("click", () => askForKey("Enter the API key for this server."));
  $("key-form").addEventListener("submit", () => {
    storeKey($("key-input").value.trim());
    afterKeyChange();
  });
  $("key-cancel").addEventListener("click", () => $("key-dialog").close());
  $("key-forget").addEventListener("click", () => {
    storeKey("");
    $("key-input").value = "";
    $("key-input").focus();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && isNarrow()) closePanels();
  });
  window.addEventListener("hashchange", () => {
    const id = threadFromHash();
    if (id && id !== state.threadId) openThread(id);
  });
}

async function start() {
  wire();
  const [info] = await Promise.all([api.get("/info").catch(() => null), detectFeatures()]);
  state.info = info;
  if (info) {
    state.assistantId = info.assistant_id || info.graph_id || state.assistantId;
    $("server-info").textContent = `${info.graph_id} · v${info.version}`;
  }
  renderCost();
  if (info && info.auth && !storedKey()) {
    askForKey("This server needs an API key.");
    return;
  }
  await loadThreads();
  const fromHash = threadFromHash();
  if (fromHash) await openThread(fromHash);
  document.body.dataset.ready = "true";
}

start().finally(() => {
  document.body.dataset.ready = "true";
});
