// Building DOM from data. Every piece of text from the server (model output, tool results,
// thread titles, error messages) goes in through textContent or text nodes: this module
// never parses a string as HTML, so model output cannot become markup.

export function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "text") node.textContent = String(value);
    else if (name === "className") node.className = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

export function formatUsd(usd) {
  if (typeof usd !== "number" || !Number.isFinite(usd)) return "–";
  if (usd === 0) return "$0";
  if (usd < 0.01) return `$${usd.toFixed(6)}`;
  return `$${usd.toFixed(4)}`;
}

export function formatTokens(usage) {
  if (!usage) return "–";
  const input = usage.input_tokens || 0;
  const output = usage.output_tokens || 0;
  if (!input && !output) return "–";
  return `${input.toLocaleString("en")} in · ${output.toLocaleString("en")} out`;
}

export function formatTime(value) {
  if (!value) return "";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  const sameDay = date.toDateString() === new Date().toDateString();
  return sameDay
    ? date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" })
    : date.toLocaleString([], { dateStyle: "short", timeStyle: "short" });
}

// The text of a message's content: a string, or a list of content blocks.
export function contentText(content) {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content
    .map((block) => (typeof block === "string" ? block : block && block.type === "text" ? block.text || "" : ""))
    .join("");
}

export function messageRole(message) {
  const type = (message && message.type) || "";
  if (type === "human" || type === "HumanMessageChunk") return "human";
  if (type === "ai" || type === "AIMessageChunk") return "ai";
  if (type === "tool" || type === "ToolMessageChunk") return "tool";
  return "other";
}

const WHO = { human: "You", ai: "Assistant", tool: "Tool" };

// One conversation entry. Returns the <li>; its .text child receives streamed tokens.
export function messageItem(message) {
  const role = messageRole(message);
  const text = el("div", { className: "text" });
  text.textContent = contentText(message.content);
  const item = el(
    "li",
    { className: `msg msg-${role}`, "data-message-id": message.id || "" },
    el("div", { className: "who", text: role === "tool" ? `Tool · ${message.name || ""}` : WHO[role] || role }),
    text,
  );
  const calls = message.tool_calls || [];
  if (role === "ai" && calls.length) {
    item.append(
      el(
        "ul",
        { className: "tool-calls", "aria-label": "Tool calls" },
        calls.map((call) => el("li", { text: `${call.name}(${JSON.stringify(call.args || {})})` })),
      ),
    );
    if (!text.textContent) item.classList.add("msg-calls-only");
  }
  const meta = el("p", { className: "meta" });
  item.append(meta);
  return item;
}

// The small line under an answer: tier, dollars, tokens (whatever is known).
export function setMessageMeta(item, { tier, usd, usage } = {}) {
  const meta = item.querySelector(".meta");
  if (!meta) return;
  const parts = [];
  if (tier) parts.push(`tier ${tier}`);
  if (typeof usd === "number") parts.push(formatUsd(usd));
  if (usage && (usage.input_tokens || usage.output_tokens)) {
    parts.push(`${usage.input_tokens || 0} in / ${usage.output_tokens || 0} out tokens`);
  }
  meta.textContent = parts.join(" · ");
}

export function describeValue(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

// An approval card for an interrupt. onDecide(decision) resumes the run.
export function approvalCard(interrupt, onDecide) {
  const value = interrupt.value;
  const isApproval = value && typeof value === "object" && value.type === "approval";
  const headingId = `approval-${interrupt.id || Math.random().toString(36).slice(2)}`;
  const card = el("article", {
    className: "approval",
    "aria-labelledby": headingId,
    "data-interrupt-id": interrupt.id || "",
  });
  if (!isApproval) {
    card.append(
      el("h3", { id: headingId, text: "The run is waiting for input" }),
      el("pre", { className: "interrupt-value", text: JSON.stringify(value, null, 2) }),
    );
    const inputId = `${headingId}-answer`;
    const input = el("input", { id: inputId, type: "text", autocomplete: "off" });
    card.append(
      el("label", { for: inputId, text: "Answer" }),
      input,
      el(
        "div",
        { className: "approval-buttons" },
        el("button", {
          type: "button",
          className: "primary",
          text: "Resume",
          onclick: () => {
            let answer = input.value;
            try {
              answer = JSON.parse(answer);
            } catch {
              // plain text answer
            }
            onDecide(answer);
          },
        }),
      ),
    );
    return card;
  }
  card.append(
    el("h3", { id: headingId, text: `${value.question || "Approve this action?"} (${value.tool || "tool"})` }),
  );
  const facts = el("dl", { className: "facts" });
  for (const [name, arg] of Object.entries(value.args || {})) {
    if (arg === null || arg === undefined || arg === "") continue;
    facts.append(el("dt", { text: name }), el("dd", { text: describeValue(arg) }));
  }
  card.append(facts);
  const reasonId = `${headingId}-reason`;
  const reason = el("input", { id: reasonId, type: "text", autocomplete: "off" });
  card.append(
    el("label", { for: reasonId, text: "Reason (optional, sent when rejecting)" }),
    reason,
    el(
      "div",
      { className: "approval-buttons" },
      el("button", {
        type: "button",
        className: "primary approve",
        text: "Approve",
        onclick: () => onDecide({ action: "approve" }),
      }),
      el("button", {
        type: "button",
        className: "danger reject",
        text: "Reject",
        onclick: () => onDecide(reason.value.trim() ? { action: "reject", reason: reason.value.trim() } : { action: "reject" }),
      }),
    ),
  );
  return card;
}

// One checkpoint of the history list. onReplay is null when the server cannot replay.
export function historyItem(checkpoint, { onFork, onReplay = null }) {
  const meta = checkpoint.metadata || {};
  const values = checkpoint.values || {};
  const step = meta.step ?? "?";
  const next = (checkpoint.next || []).join(", ") || "end";
  const messages = (values.messages || []).length;
  const facts = [`${meta.source || "checkpoint"}`, `next: ${next}`, `${messages} message${messages === 1 ? "" : "s"}`];
  if (values.tier) facts.push(`tier ${values.tier}`);
  if (typeof values.cost_usd === "number") facts.push(formatUsd(values.cost_usd));
  const ref = checkpoint.checkpoint || {};
  const buttons = el(
    "div",
    { className: "history-buttons" },
    el("button", {
      type: "button",
      className: "fork",
      text: "Fork",
      "aria-label": `Fork from step ${step}`,
      onclick: () => onFork(ref, step),
    }),
  );
  if (onReplay) {
    buttons.append(
      el("button", {
        type: "button",
        className: "replay",
        text: "Replay",
        "aria-label": `Replay from step ${step}`,
        onclick: () => onReplay(ref, step),
      }),
    );
  }
  return el(
    "li",
    { "data-checkpoint-id": ref.checkpoint_id || "" },
    el("div", { className: "history-step", text: `Step ${step}` }),
    el("div", { className: "history-facts", text: facts.join(" · ") }),
    el("time", { className: "muted", datetime: checkpoint.created_at || "", text: formatTime(checkpoint.created_at) }),
    buttons,
  );
}

// What a replay reported (POST /threads/{id}/replay's replay/result event), as two texts.
export function replaySummary(result) {
  const served = result.model_calls_served || 0;
  const live = result.model_calls_live || 0;
  const tools = result.tool_calls || 0;
  const lines = [
    `${served} model call${served === 1 ? "" : "s"} served from the recording, ${live} live, ${tools} tool call${tools === 1 ? "" : "s"}.`,
  ];
  if (result.divergence) {
    const d = result.divergence;
    lines.push(`Diverged at step ${d.step}, node ${d.node}: ${d.reason}`);
  }
  if (result.error) lines.push(`Error: ${result.error}${result.reproduced ? " (the original run failed the same way)" : ""}`);
  const diff = result.diff || [];
  lines.push(diff.length ? `The final state differs from the original in: ${diff.map((d) => d.key).join(", ")}.` : "The final state is the same as the original's.");
  return {
    summary: lines.join("\n"),
    diff: diff.map((d) => [`${d.key} (${d.change})`, ...(d.diff || [])].join("\n")).join("\n\n"),
  };
}
