/* botkit playground: turn Stream messages into DOM the way Stream's React client shows them.
 *
 * Two client lines, as measured in the project's reference (stream-react-client.md):
 *   "current"  stream-chat-react 14.x: no MML, error messages look like any message;
 *   "mml"      stream-chat-react 13.1, the last with MML (mml-react): MML shows together
 *              with the text and the attachments, errors read "Error · Unsent".
 * The rule numbers in the comments are the reference's. Notes that are the playground's
 * own (not something the client shows) carry the class ``pg-note``.
 *
 * Everything is built with createElement/textContent: no text from a message is ever
 * parsed as HTML. MML is parsed as XML by DOMParser and rebuilt tag by tag.
 */
(function () {
  "use strict";

  const md = window.BotkitMarkdown;

  const LINES = {
    current: { label: "current · stream-chat-react 14.x", mml: false, errorLabel: false },
    mml: { label: "mml · stream-chat-react 13.1", mml: true, errorLabel: true },
  };

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of [].concat(children || [])) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  const note = (text, extra) => el("div", { class: `pg-note ${extra || ""}`.trim(), text });

  // -- URLs (rule 1) ----------------------------------------------------------------

  /**
   * What the client does with a URL: ``{ok, url}`` when it loads, ``{ok: false, reason}``
   * when it does not. @braintree/sanitize-url drops control characters, then turns any
   * scheme starting with javascript, data or vbscript into about:blank.
   */
  function checkUrl(url, what = "picture") {
    if (typeof url !== "string" || !url.trim()) return { ok: false, reason: `no ${what} URL` };
    const value = url.replace(/[\u0000-\u0020\u007f-\u009f\u2000-\u200d\ufeff]/g, "");
    const scheme = /^([^:/?#]+):/.exec(value);
    const refused = scheme && /^[^\w]*(javascript|data|vbscript)/i.exec(scheme[1]);
    if (refused) {
      const name = refused[1].toLowerCase();
      return {
        ok: false,
        refused: name,
        reason: `${name}: URL refused: Stream's client sanitises it to about:blank`,
      };
    }
    if (/^https?:\/\//i.test(url.trim())) return { ok: true, url: url.trim() };
    return { ok: false, reason: `not an http(s) URL: only http(s) ${what}s load in the client` };
  }

  function picture(url, alt) {
    const check = checkUrl(url);
    if (check.ok) return el("img", { src: check.url, alt: alt || "", loading: "lazy" });
    return el(
      "div",
      { class: "img-placeholder", role: "img", "aria-label": `picture not shown: ${check.reason}`, dataset: { url: String(url || "") } },
      [el("span", { class: "img-placeholder-icon", "aria-hidden": "true" }), el("span", { class: "img-placeholder-reason", text: check.reason })]
    );
  }

  function link(url, children) {
    const href = md.linkHref(url);
    if (!href) return el("span", {}, children);
    return el("a", { href, target: "_blank", rel: "noopener noreferrer" }, children);
  }

  // -- attachments (rules 1-5) -----------------------------------------------------

  const hasActions = (att) => Array.isArray(att.actions) && att.actions.length > 0;

  /** How the client shows an attachment: giphy, image, card or unsupported (rule 2). */
  function kindOf(att) {
    if (att.type === "giphy") return "giphy";
    if (att.type === "image" && !att.title_link) return "image";
    if (hasActions(att) && !att.title_link) return "unsupported";
    return "card";
  }

  /** The button row: the attachment's text again (rule 3), then one button per action. */
  function actionRow(att, onAction) {
    if (!hasActions(att)) return null;
    const row = el("div", { class: "att-actions" });
    if (att.text) row.append(el("span", { class: "att-actions-text", text: String(att.text) }));
    for (const action of att.actions) {
      const name = String((action && action.name) || "");
      const value = String(action && action.value !== undefined && action.value !== null ? action.value : "");
      const button = el("button", {
        type: "button",
        class: `action action--${(action && action.style) || "default"}`,
        text: (action && action.text) || value || name,
        dataset: { name, value },
      });
      // rule 4: a click sends exactly one pair, the button's name and value
      button.addEventListener("click", () => onAction({ [name]: value }, button));
      row.append(button);
    }
    return row;
  }

  // Slack-style fields the React client does not draw: say so instead of drawing them.
  const NOT_SHOWN = ["pretext", "fields", "footer", "color", "author_icon", "footer_icon"];

  function attachment(att, onAction, { ephemeral = false } = {}) {
    const kind = kindOf(att);
    const type = typeof att.type === "string" ? att.type : "";
    const box = el("div", { class: `attachment att-${kind}`, dataset: { type, kind } });
    if (kind === "unsupported") {
      box.append(el("div", { class: "att-unsupported-label", text: "Unsupported attachment" }));
      box.title = "A non-giphy, non-image attachment with buttons needs a title_link (rule 2)";
      return box;
    }
    let media = null;
    if (kind === "giphy") {
      const giphy = att.giphy && typeof att.giphy === "object" ? att.giphy : {};
      const rendition = giphy.fixed_height || giphy.original || {};
      media = rendition.url || att.image_url || att.thumb_url;
    } else {
      media = att.image_url || att.thumb_url;
    }
    if (media || kind === "image" || kind === "giphy") {
      const shown = el("div", { class: "att-media" }, picture(media, att.fallback || att.title));
      // rule 5: the ephemeral giphy preview carries a GIPHY badge
      if (kind === "giphy" && ephemeral) shown.append(el("div", { class: "att-giphy-badge", text: "GIPHY" }));
      box.append(shown);
    }
    if (kind === "card" || kind === "giphy") {
      if (att.title) box.append(el("div", { class: "att-title", text: String(att.title) }));
      if (att.text) box.append(el("div", { class: "att-text", text: String(att.text) }));
      if (att.title_link) {
        const check = checkUrl(att.title_link, "link");
        let host = "";
        try {
          host = check.ok ? new URL(check.url).host : "";
        } catch (e) {
          host = "";
        }
        box.append(
          el("div", { class: "att-source" }, check.ok ? link(check.url, [att.author_name || host]) : el("span", { text: att.author_name || "about:blank" }))
        );
        if (!check.ok && check.refused) box.append(note(`title_link: ${check.reason}`, "att-link-refused"));
      }
    }
    const row = actionRow(att, onAction);
    if (row) box.append(row);
    const hidden = NOT_SHOWN.filter((key) => att[key] !== undefined && att[key] !== null && att[key] !== "");
    if (hidden.length) box.append(note(`not shown by Stream's React client: ${hidden.join(", ")}`, "att-not-shown"));
    return box;
  }

  // -- MML (13.1 only, rule 8) -----------------------------------------------------

  class MMLError extends Error {}

  function mmlChildren(node, ctx) {
    const out = [];
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        if (child.nodeValue.trim()) {
          out.push(el("p", { class: "mml-text", text: child.nodeValue.trim(), dataset: { mmlTag: "#text" } }));
        }
      } else if (child.nodeType === Node.ELEMENT_NODE) {
        out.push(mmlNode(child, ctx));
      }
    }
    return out;
  }

  function attr(node, name) {
    return node.hasAttribute(name) ? node.getAttribute(name) : null;
  }

  function toLocalInput(iso) {
    const date = iso ? new Date(iso) : null;
    if (!date || isNaN(date)) return "";
    const pad = (n) => String(n).padStart(2, "0");
    return (
      `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}` +
      `T${pad(date.getHours())}:${pad(date.getMinutes())}`
    );
  }

  function icsLink(node) {
    const stamp = (v) => {
      const d = new Date(v);
      return isNaN(d) ? "" : d.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
    };
    const esc = (v) => String(v || "").replace(/([,;\\])/g, "\\$1").replace(/\n/g, "\\n");
    const lines = [
      "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//botkit//playground//EN", "BEGIN:VEVENT",
      `UID:${Date.now()}@botkit-playground`, `DTSTAMP:${stamp(new Date().toISOString())}`,
      `DTSTART:${stamp(attr(node, "start"))}`, `DTEND:${stamp(attr(node, "end") || attr(node, "start"))}`,
      `SUMMARY:${esc(attr(node, "title"))}`, `DESCRIPTION:${esc(attr(node, "description"))}`,
      `LOCATION:${esc(attr(node, "location"))}`, "END:VEVENT", "END:VCALENDAR",
    ];
    return "data:text/calendar;charset=utf-8," + encodeURIComponent(lines.join("\r\n"));
  }

  const TAGS = {
    text: (n) => el("p", { class: "mml-text", text: n.textContent }),
    md: (n) => el("div", { class: "mml-md" }, md.markdown(n.textContent)),
    icon: (n) => el("span", { class: "mml-icon", title: "Material icon", text: attr(n, "name") || "icon" }),
    image: (n) => {
      const shown = picture(attr(n, "src"), attr(n, "alt"));
      shown.classList.add("mml-image");
      return shown;
    },
    button: (n) => {
      const label = [];
      if (attr(n, "icon")) label.push(el("span", { class: "mml-icon", text: attr(n, "icon") }));
      label.push(n.textContent.trim() || attr(n, "value") || "Submit");
      const cls = `mml-button${attr(n, "variant") === "floating" ? " mml-button--floating" : ""}`;
      if (attr(n, "url")) {
        const a = link(attr(n, "url"), label);
        a.className = cls;
        return a;
      }
      return el("button", { type: "submit", class: cls, name: attr(n, "name"), value: attr(n, "value") ?? "" }, label);
    },
    button_list: (n, ctx) =>
      el("div", { class: `mml-button-list${attr(n, "variant") === "floating" ? " floating" : ""}` }, mmlChildren(n, ctx)),
    input: (n) => {
      const type = (attr(n, "type") || "text").toLowerCase();
      const allowed = ["text", "hidden", "email", "number", "password", "url", "tel", "search", "date", "time"];
      const input = el("input", {
        class: "mml-input",
        type: allowed.includes(type) ? type : "text",
        name: attr(n, "name"),
        value: attr(n, "value") ?? "",
        placeholder: attr(n, "placeholder"),
        "aria-label": attr(n, "label") || attr(n, "placeholder") || attr(n, "name"),
      });
      if (type === "hidden") return input;
      const label = attr(n, "label");
      return el("label", { class: "mml-field" }, [label ? el("span", { text: label }) : null, input]);
    },
    number: (n) => {
      const start = parseInt(attr(n, "value") || "0", 10);
      const input = el("input", {
        class: "mml-number-value", type: "number", step: "1",
        name: attr(n, "name"), value: String(isNaN(start) ? 0 : start),
        "aria-label": attr(n, "name"),
      });
      const step = (d) => () => {
        const v = parseInt(input.value || "0", 10);
        input.value = String((isNaN(v) ? 0 : v) + d);
      };
      const minus = el("button", { type: "button", class: "mml-step", text: "−", "aria-label": "decrease" });
      const plus = el("button", { type: "button", class: "mml-step", text: "+", "aria-label": "increase" });
      minus.addEventListener("click", step(-1));
      plus.addEventListener("click", step(1));
      return el("div", { class: "mml-number" }, [minus, input, plus]);
    },
    scheduler: (n) =>
      el("label", { class: "mml-field" }, [
        el("span", { text: "Date and time" }),
        el("input", {
          class: "mml-input", type: "datetime-local", name: attr(n, "name"),
          value: toLocalInput(attr(n, "selected")), dataset: { scheduler: "1" },
        }),
      ]),
    add_to_calendar: (n) => {
      const title = attr(n, "title") || "Event";
      const when = [attr(n, "start"), attr(n, "end")].filter(Boolean).join(" – ");
      return el("div", { class: "mml-calendar" }, [
        el("span", { class: "mml-icon", text: "event" }),
        el("span", { text: `${title}${when ? ` (${when})` : ""}${attr(n, "location") ? ` @ ${attr(n, "location")}` : ""}` }),
        el("a", { href: icsLink(n), download: "event.ics", text: "Add to calendar" }),
      ]);
    },
    carousel: (n, ctx) => el("div", { class: "mml-carousel" }, mmlChildren(n, ctx)),
    item: (n, ctx) => {
      const item = el("div", { class: "mml-item" }, mmlChildren(n, ctx));
      const width = parseInt(attr(n, "width") || "", 10);
      if (width > 0) item.style.flexBasis = `${width}px`;
      return item;
    },
    row: (n, ctx) => el("div", { class: "mml-row" }, mmlChildren(n, ctx)),
    col: (n, ctx) => {
      const col = el("div", { class: "mml-col" }, mmlChildren(n, ctx));
      const width = attr(n, "width");
      if (width === "auto") col.style.flex = "0 0 auto";
      else if (/^\d+$/.test(width || "")) col.style.flex = `0 0 ${(100 * Math.min(12, +width)) / 12}%`;
      if (/^\d+$/.test(attr(n, "offset") || "")) col.style.marginLeft = `${(100 * +attr(n, "offset")) / 12}%`;
      if (["left", "center", "right"].includes(attr(n, "align"))) col.style.textAlign = attr(n, "align");
      return col;
    },
  };

  function mmlNode(node, ctx) {
    const render = TAGS[node.tagName];
    if (!render || !Object.prototype.hasOwnProperty.call(TAGS, node.tagName)) {
      throw new MMLError(`unknown tag <${node.tagName}>`);
    }
    const out = render(node, ctx);
    out.dataset.mmlTag = node.tagName;
    return out;
  }

  // Elements whose value is the component's own state in mml-react.
  const STATEFUL = new Set(["input", "number", "scheduler"]);
  const valueOf = (node) => (node.matches("input") ? node : node.querySelector("input"));
  const mmlKids = (node) => Array.from(node.querySelectorAll(":scope > [data-mml-tag]"));

  /**
   * Redraw a form as mml-react does: elements are keyed by their position, so where the
   * new MML has the same tag at the same place as the old one, the element keeps its
   * state (what is in its input) whatever the new MML says its value is. An error line
   * inserted above the inputs makes each input show the previous one's value (rule 8).
   */
  function keepState(oldNode, newNode) {
    const old = mmlKids(oldNode);
    mmlKids(newNode).forEach((kid, i) => {
      const before = old[i];
      if (!before || before.dataset.mmlTag !== kid.dataset.mmlTag) return; // remounted
      if (STATEFUL.has(kid.dataset.mmlTag)) {
        const from = valueOf(before);
        const to = valueOf(kid);
        if (from && to) to.value = from.value;
      }
      keepState(before, kid);
    });
  }

  /** The form data a submit sends: mml_name, every named field, the clicked button. */
  function formData(form, submitter) {
    const data = {};
    if (form.dataset.mmlName) data.mml_name = form.dataset.mmlName;
    for (const field of form.elements) {
      if (!field.name || field.tagName === "BUTTON") continue;
      if (field.dataset.scheduler) {
        const date = field.value ? new Date(field.value) : null;
        data[field.name] = date && !isNaN(date) ? date.toISOString() : "";
      } else {
        data[field.name] = field.value;
      }
    }
    // mml-react sends the clicked button's name: value with the inputs (rule 8)
    if (submitter && submitter.name) data[submitter.name] = submitter.value;
    return data;
  }

  /** The MML string as a real <form>; a submit calls ``onSubmit(form_data)``. */
  function mml(source, onSubmit) {
    let src = String(source || "").trim();
    if (!/^<mml[\s/>]/.test(src)) src = `<mml>${src}</mml>`;
    src = src.replace(/&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);)/gi, "&amp;");
    const invalid = (why) =>
      el("div", { class: "mml-invalid", title: why, text: "This chat message has invalid formatting" });
    const doc = new DOMParser().parseFromString(src, "application/xml");
    if (doc.getElementsByTagName("parsererror").length) return invalid("not well-formed XML");
    const root = doc.documentElement;
    if (root.tagName !== "mml") return invalid(`the root is <${root.tagName}>, not <mml>`);
    let children;
    try {
      children = mmlChildren(root, {});
    } catch (e) {
      if (e instanceof MMLError) return invalid(e.message);
      throw e;
    }
    const form = el(
      "form",
      {
        class: `mml${attr(root, "type") === "card" ? " mml--card" : ""}`,
        novalidate: true,
        dataset: attr(root, "name") ? { mmlName: attr(root, "name") } : {},
      },
      children
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      onSubmit(formData(form, event.submitter), event.submitter);
    });
    return form;
  }

  // -- a whole message ---------------------------------------------------------------

  function timeOf(message) {
    const date = new Date(message.created_at || Date.now());
    return isNaN(date) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function warningList(warnings) {
    if (!Array.isArray(warnings) || !warnings.length) return null;
    return el(
      "ul",
      { class: "msg-warnings pg-note", "aria-label": "render check" },
      warnings.map((w) =>
        el("li", { class: "msg-warning", dataset: { rule: String(w.rule), code: String(w.code || "") } }, [
          el("b", { text: `rule ${w.rule}` }),
          " ",
          String(w.text || ""),
        ])
      )
    );
  }

  /**
   * One message as a list item, as the client line ``opts.line`` shows it.
   * ``opts.action(form_data, control)`` is called for a button click or an MML submit;
   * ``opts.previous`` is the item this one redraws (MML inputs keep their state);
   * ``opts.warnings`` the render check's warnings for this line; ``opts.badges`` and
   * ``opts.problem`` the playground's own notes.
   */
  function message(msg, opts) {
    const line = LINES[opts.line] ? opts.line : "current";
    const rules = LINES[line];
    const type = typeof msg.type === "string" ? msg.type : "regular";
    const user = msg.user || {};
    const name = String(user.name || user.id || "someone");
    const atts = (Array.isArray(msg.attachments) ? msg.attachments : []).filter((a) => a && typeof a === "object");
    const giphy = atts.some((a) => a.type === "giphy");
    const item = el("li", {
      class: `msg msg--${type.replace(/[^a-z]/g, "")}${giphy ? " msg--giphy" : ""}`,
      dataset: { type, id: msg.id || "", line },
    });
    item.append(el("div", { class: "avatar", "aria-hidden": "true", text: name.slice(0, 1).toUpperCase() }));
    const body = el("div", { class: "msg-body" });
    const meta = el("div", { class: "msg-meta" }, [
      el("span", { class: "author", text: name }),
      el("time", { text: timeOf(msg) }),
    ]);
    if (msg.command) meta.append(el("span", { class: "badge pg-note", text: `/${msg.command}` }));
    if (type === "ephemeral" && !giphy) {
      // rule 6: the client marks nothing; the playground says it, outside the message
      meta.append(el("span", { class: "badge pg-note", title: "only the sender sees it; the client shows no mark", text: "ephemeral" }));
    }
    for (const text of opts.badges || []) meta.append(el("span", { class: "badge badge--note pg-note", text }));
    body.append(meta);
    if (type === "error" && rules.errorLabel) {
      // rule 6: 13.1 labels errors; 14.x gives the class no style at all
      body.append(el("div", { class: "msg-error-label" }, [el("span", { class: "msg-error-icon", "aria-hidden": "true", text: "!" }), "Error · Unsent"]));
    }
    const bubble = el("div", { class: "bubble" });
    if (atts.length) {
      bubble.append(el("div", { class: "attachments" }, atts.map((a) => attachment(a, opts.action, { ephemeral: type === "ephemeral" }))));
    }
    if (msg.text) {
      const text = el("div", { class: "msg-text" }, md.markdown(msg.text));
      // rule 5: with a giphy attachment the client hides the text (it is the command)
      if (giphy) text.hidden = true;
      bubble.append(text);
    }
    let form = null;
    const hasMml = typeof msg.mml === "string" && msg.mml.trim();
    if (hasMml && rules.mml) {
      form = mml(msg.mml, opts.action);
      bubble.append(form);
    }
    if (!Array.from(bubble.children).some((c) => !c.hidden)) {
      bubble.append(el("div", { class: "msg-text msg-empty pg-note", text: "(nothing to show)" }));
    }
    body.append(bubble);
    if (hasMml && !rules.mml) body.append(note("MML is not shown by the current client", "mml-not-shown"));
    if (type === "ephemeral" && giphy) body.append(el("div", { class: "only-you", text: "Only visible to you" }));
    const warnings = warningList(opts.warnings);
    if (warnings) body.append(warnings);
    if (opts.problem) body.append(el("div", { class: "msg-problem pg-note", text: opts.problem }));
    item.append(body);
    if (form && form.tagName === "FORM" && opts.previous) {
      const before = opts.previous.querySelector("form.mml");
      if (before) keepState(before, form);
    }
    return item;
  }

  window.BotkitRender = { LINES, el, attachment, mml, message, formData, checkUrl, kindOf };
})();
