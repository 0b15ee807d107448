/* botkit playground: the channel, the composer and the calls panel.
 *
 * The page never builds or signs webhooks: it asks the bot's server (/playground/api/…)
 * to sign and send them, and shows what went over the wire.
 */
(function () {
  "use strict";

  const R = window.BotkitRender;
  const el = R.el;
  const API = document.body.dataset.api;
  const $ = (id) => document.getElementById(id);

  const state = {
    commands: [],
    cid: "messaging:playground",
    items: new Map(), // key -> {msg, node, badges, problem, warnings, line}
    selected: -1,
    calls: 0,
    line: "current",
  };

  // -- the server ------------------------------------------------------------------

  async function api(path, body) {
    const init =
      body === undefined
        ? {}
        : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
    const response = await fetch(API + path, init);
    let data = null;
    try {
      data = await response.json();
    } catch (e) {
      data = null;
    }
    if (!response.ok) {
      throw new Error((data && data.error) || `the playground answered HTTP ${response.status}`);
    }
    return data;
  }

  function userId() {
    return $("user").value.trim() || "alice";
  }

  function newId() {
    const uuid = window.crypto && crypto.randomUUID
      ? crypto.randomUUID()
      : "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx".replace(/[xy]/g, (c) => {
          const r = (Math.random() * 16) | 0;
          return (c === "x" ? r : (r & 0x3) | 0x8).toString(16);
        });
    return `${userId()}-${uuid}`;
  }

  function now() {
    return new Date().toISOString();
  }

  function isReply(call) {
    const body = call.response.body;
    return call.response.status === 200 && body && typeof body === "object" && "message" in body;
  }

  // -- the calls panel -------------------------------------------------------------

  function pretty(value) {
    if (typeof value === "string") return value;
    return JSON.stringify(value, null, 2);
  }

  function logCall(kind, label, call) {
    state.calls += 1;
    const req = call.request;
    const res = call.response;
    const headers = Object.entries(req.headers)
      .map(([k, v]) => `${k}: ${v}`)
      .join("\n");
    const statusClass = res.status < 300 ? "ok" : res.status < 500 ? "warn" : "bad";
    for (const open of document.querySelectorAll("#calls details[open]")) open.open = false;
    const entry = el("li", { class: "call", dataset: { kind, status: String(res.status) } }, [
      el("details", { open: true }, [
        el("summary", {}, [
          el("span", { class: `kind kind--${kind}`, text: kind }),
          el("span", { class: "label", text: label }),
          el("span", { class: `status status--${statusClass}`, text: String(res.status) }),
          el("span", { class: "latency", text: `${call.latency_ms} ms` }),
        ]),
        el("div", { class: "call-line" }, [el("b", { text: req.method }), " ", req.path]),
        el("h3", { text: "Request headers" }),
        el("pre", { class: "headers", text: headers }),
        el("h3", { text: "Request body (signed bytes, shown pretty)" }),
        el("pre", { class: "json request-body", text: pretty(req.body) }),
        el("h3", { text: `Response ${res.status} · ${call.latency_ms} ms` }),
        el("pre", { class: "json response-body", text: pretty(res.body) }),
      ]),
    ]);
    $("calls").prepend(entry);
  }

  // -- the client line -------------------------------------------------------------

  const LINE_KEY = "botkit.playground.line";

  /** The line asked for in the URL (?line=mml), else the one kept from last time. */
  function initialLine() {
    const asked = new URLSearchParams(window.location.search).get("line");
    if (asked && R.LINES[asked]) return asked;
    try {
      const kept = window.localStorage.getItem(LINE_KEY);
      if (kept && R.LINES[kept]) return kept;
    } catch (e) {
      /* storage can be off: the default line then */
    }
    return "current";
  }

  function setLine(line) {
    state.line = R.LINES[line] ? line : "current";
    $("line").value = state.line;
    document.body.dataset.line = state.line;
    try {
      window.localStorage.setItem(LINE_KEY, state.line);
    } catch (e) {
      /* not kept across reloads then; the URL still says it */
    }
    const url = new URL(window.location.href);
    url.searchParams.set("line", state.line);
    window.history.replaceState(null, "", url);
    for (const [key, item] of state.items) draw(key, item, { fresh: true });
  }

  // -- the channel -----------------------------------------------------------------

  function scrollDown() {
    const list = $("messages");
    list.scrollTop = list.scrollHeight;
  }

  function warningsOf(call) {
    return (call && call.warnings) || null;
  }

  /**
   * Draw ``item`` for the current line. A redraw of the same message on the same line
   * keeps its MML inputs' state, as the client's components stay mounted.
   */
  function draw(key, item, { fresh = false, previous = null } = {}) {
    const node = R.message(item.msg, {
      line: state.line,
      badges: item.badges,
      problem: item.problem,
      warnings: item.warnings ? item.warnings[state.line] : null,
      previous: fresh ? null : previous,
      action: (formData, control) => act(key, formData, control),
    });
    node.dataset.key = key;
    if (item.node && item.node.isConnected) item.node.replaceWith(node);
    item.node = node;
    return node;
  }

  function show(key, msg, extra = {}) {
    $("empty").hidden = true;
    const old = state.items.get(key);
    const item = {
      msg,
      badges: extra.badges || [],
      problem: extra.problem || "",
      warnings: extra.warnings || null,
      node: old ? old.node : null,
    };
    // rule 7: the client redraws a message only when its updated_at changed
    const same = old && old.node && old.node.isConnected && old.msg.updated_at === msg.updated_at;
    if (same && !extra.problem && !old.problem) {
      Object.assign(old, { msg, warnings: extra.warnings || old.warnings });
      setBusy(old.node, false);
      return old;
    }
    draw(key, item, { previous: old && old.node });
    if (!item.node.isConnected) $("messages").append(item.node);
    state.items.set(key, item);
    scrollDown();
    return item;
  }

  function remove(key) {
    const old = state.items.get(key);
    if (old) old.node.remove();
    state.items.delete(key);
  }

  function system(text, kind = "note") {
    $("empty").hidden = true;
    $("messages").append(el("li", { class: `system system--${kind}`, text }));
    scrollDown();
  }

  function setBusy(node, busy) {
    node.classList.toggle("busy", busy);
    for (const control of node.querySelectorAll("button, input")) control.disabled = busy;
  }

  // -- what Stream does ------------------------------------------------------------

  async function push(msg) {
    const call = await api("/event", { type: "message.new", message: msg, user: userId() });
    logCall("push", "message.new", call);
  }

  async function runCommand(text) {
    const call = await api("/command", { text, user: userId() });
    const sent = call.request.body.message;
    logCall("command", text, call);
    if (!isReply(call)) {
      // Stream goes on without the bot's answer and saves the message as typed.
      const msg = show(sent.id, sent, {
        problem: `The bot answered HTTP ${call.response.status}: Stream saves the message as typed.`,
      }).msg;
      await push(msg);
      return;
    }
    const reply = call.response.body.message;
    if (reply === null) {
      system(`${text}: the bot deleted the message ({"message": null}).`);
      return;
    }
    const msg = Object.assign({}, sent, reply);
    msg.updated_at = now(); // Stream stamps the message it stores
    show(sent.id, msg, { warnings: warningsOf(call) });
    if ((msg.type || "regular") === "regular") await push(msg);
  }

  async function sendPlain(text) {
    const call = await api("/before-send", { text, user: userId() });
    const sent = call.request.body.message;
    logCall("before-send", text.length > 40 ? `${text.slice(0, 40)}…` : text, call);
    const badges = [];
    let msg = Object.assign({}, sent);
    if (isReply(call) && call.response.body.message && typeof call.response.body.message === "object") {
      const reply = call.response.body.message;
      msg = Object.assign({}, sent, reply);
      if (reply.type === "error") {
        msg.id = newId();
        msg.created_at = msg.updated_at = now();
        show(msg.id, msg, { badges: ["rejected by before-send"], warnings: warningsOf(call) });
        return;
      }
      const changed = ["text", "attachments", "mml", "show_in_channel", "silent", "i18n"].some(
        (k) => k in reply && JSON.stringify(reply[k]) !== JSON.stringify(sent[k])
      );
      if (changed) badges.push("rewritten by before-send");
    } else {
      badges.push(`before-send answered HTTP ${call.response.status}: passed unchanged`);
    }
    msg.id = newId();
    msg.type = msg.type || "regular";
    msg.cid = state.cid;
    msg.created_at = msg.updated_at = now();
    show(msg.id, msg, { badges, warnings: warningsOf(call) });
    await push(msg);
  }

  async function act(key, formData, control) {
    const item = state.items.get(key);
    if (!item) return;
    setBusy(item.node, true);
    const label = Object.entries(formData)
      .filter(([k]) => k !== "mml_name")
      .map(([k, v]) => `${k}=${v}`)
      .join(" ");
    try {
      const call = await api("/action", { message: item.msg, form_data: formData, user: userId() });
      logCall("action", label || "submit", call);
      if (!isReply(call)) {
        show(key, item.msg, {
          badges: item.badges,
          warnings: item.warnings,
          problem: `The bot answered HTTP ${call.response.status}: Stream tells the user "Custom Command handler returned an error".`,
        });
        return;
      }
      const reply = call.response.body.message;
      if (reply === null) {
        remove(key);
        return;
      }
      const wasRegular = (item.msg.type || "regular") === "regular";
      const msg = Object.assign({}, item.msg, reply);
      msg.updated_at = now(); // Stream stamps the answer it stores: the client redraws
      show(key, msg, { warnings: warningsOf(call) });
      if (!wasRegular && (msg.type || "regular") === "regular") await push(msg);
    } catch (e) {
      const current = state.items.get(key);
      if (current) {
        show(key, current.msg, { badges: current.badges, warnings: current.warnings, problem: String(e.message || e) });
      }
    }
  }

  // -- the composer ----------------------------------------------------------------

  function matches() {
    const m = /^\/(\S*)$/.exec($("input").value);
    if (!m) return [];
    return state.commands.filter((c) => c.name.startsWith(m[1].toLowerCase()));
  }

  function renderSuggestions() {
    const list = $("suggestions");
    const found = matches();
    list.textContent = "";
    if (!found.length) {
      list.hidden = true;
      state.selected = -1;
    } else {
      state.selected = Math.min(Math.max(state.selected, 0), found.length - 1);
      found.forEach((cmd, i) => {
        const option = el(
          "li",
          { role: "option", class: i === state.selected ? "selected" : "", "aria-selected": String(i === state.selected), dataset: { name: cmd.name } },
          [
            el("span", { class: "cmd-name", text: `/${cmd.name}` }),
            cmd.args ? el("span", { class: "cmd-args", text: cmd.args }) : null,
            el("span", { class: "cmd-desc", text: cmd.description }),
          ]
        );
        option.addEventListener("mousedown", (e) => {
          e.preventDefault();
          complete(cmd);
        });
        list.append(option);
      });
      list.hidden = false;
    }
    const typed = /^\/(\S+)\s/.exec($("input").value);
    const cmd = typed && state.commands.find((c) => c.name === typed[1]);
    const hint = $("hint");
    hint.hidden = !cmd;
    hint.textContent = "";
    if (cmd) {
      hint.append(el("b", { text: `/${cmd.name}` }), " ", el("span", { class: "cmd-args", text: cmd.args || "" }));
      if (cmd.description) hint.append(el("span", { class: "cmd-desc", text: ` — ${cmd.description}` }));
    }
  }

  function complete(cmd) {
    $("input").value = `/${cmd.name} `;
    state.selected = -1;
    renderSuggestions();
    $("input").focus();
  }

  async function submit(event) {
    event.preventDefault();
    const input = $("input");
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    renderSuggestions();
    try {
      if (text.startsWith("/") && text.length > 1 && !/\s/.test(text[1])) await runCommand(text);
      else await sendPlain(text);
    } catch (e) {
      system(`Could not send "${text}": ${e.message || e}`, "error");
    }
  }

  function keydown(event) {
    const found = $("suggestions").hidden ? [] : matches();
    if (!found.length) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      state.selected = (state.selected + step + found.length) % found.length;
      renderSuggestions();
    } else if (event.key === "Tab" || event.key === "Enter") {
      const typed = $("input").value.slice(1).toLowerCase();
      if (event.key === "Enter" && found.some((c) => c.name === typed)) {
        $("suggestions").hidden = true; // a whole command name: send it as typed
        return;
      }
      event.preventDefault();
      complete(found[Math.max(state.selected, 0)]);
    } else if (event.key === "Escape") {
      $("suggestions").hidden = true;
    }
  }

  // -- start -----------------------------------------------------------------------

  async function start() {
    setLine(initialLine());
    $("line").addEventListener("change", () => setLine($("line").value));
    $("composer").addEventListener("submit", submit);
    $("input").addEventListener("input", () => {
      state.selected = 0;
      renderSuggestions();
    });
    $("input").addEventListener("keydown", keydown);
    $("input").addEventListener("blur", () => setTimeout(() => ($("suggestions").hidden = true), 100));
    $("clear").addEventListener("click", () => ($("calls").textContent = ""));
    try {
      const info = await api("/commands");
      state.commands = info.commands;
      state.cid = info.cid;
      $("channel-sub").textContent =
        `${info.commands.length} command${info.commands.length === 1 ? "" : "s"} · webhooks at ${info.webhook_prefix || "/"}`;
      const banner = $("banner");
      banner.hidden = false;
      if (info.dev_credentials) {
        banner.textContent = `Signing with the development key “${info.api_key}”.`;
      } else {
        banner.classList.add("banner--warn");
        banner.textContent = `Signing with the app's real secret (key “${info.api_key}”): keep this page on your machine.`;
      }
      document.body.dataset.ready = "1";
    } catch (e) {
      system(`Could not load the bot's commands: ${e.message || e}`, "error");
    }
    $("input").focus();
  }

  start();
})();
