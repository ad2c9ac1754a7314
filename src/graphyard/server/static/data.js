// Reading the server's data (thread titles, pending interrupts, the ledger's totals) and
// the page's own notes in localStorage (what each answer cost, as measured when it came).
// No DOM, no requests.

import { contentText, messageRole } from "./view.js";

export function threadTitle(thread) {
  const title = thread && thread.metadata && thread.metadata.title;
  if (typeof title === "string" && title.trim()) return title.trim();
  const messages = (thread && thread.values && thread.values.messages) || [];
  const first = messages.find((m) => messageRole(m) === "human");
  if (first) return contentText(first.content).slice(0, 80);
  return thread ? `Thread ${thread.thread_id.slice(0, 8)}` : "New conversation";
}

// Per-answer dollars and tier, as measured by this page when the answer was made.
export function answerStore(threadId) {
  try {
    return JSON.parse(localStorage.getItem(`graphyard.answers.${threadId}`) || "{}");
  } catch {
    return {};
  }
}

export function rememberAnswer(threadId, messageId, facts) {
  const store = answerStore(threadId);
  store[messageId] = facts;
  const ids = Object.keys(store);
  for (const old of ids.slice(0, Math.max(ids.length - 200, 0))) delete store[old];
  try {
    localStorage.setItem(`graphyard.answers.${threadId}`, JSON.stringify(store));
  } catch {
    // storage full or disabled: the figures still show until the page reloads
  }
}

// Dollars in a ledger answer: GET /threads/{id}/cost is {totals: {cost_usd, ...},
// by_run: {run_id: {cost_usd, ...}}, ...}; undefined when there is no figure.
export function ledgerTotal(data) {
  if (!data || typeof data !== "object") return undefined;
  for (const key of ["total_usd", "cost_usd", "usd", "dollars"]) {
    if (typeof data[key] === "number") return data[key];
  }
  for (const key of ["totals", "total"]) {
    if (data[key] && typeof data[key] === "object") return ledgerTotal(data[key]);
  }
  return undefined;
}

export function pendingInterrupts(snapshot) {
  if (Array.isArray(snapshot.interrupts) && snapshot.interrupts.length) return snapshot.interrupts;
  return (snapshot.tasks || []).flatMap((task) => task.interrupts || []);
}
