/* botkit playground: turn Stream messages into DOM, the way Stream clients show them.
 *
 * Everything is built with createElement/textContent: no text from a message is ever
 * parsed as HTML. MML is parsed as XML by DOMParser and rebuilt tag by tag.
 */
(function () {
  "use strict";

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

  // -- URLs -------------------------------------------------------------------------

  function safeUrl(url, { image = false } = {}) {
    if (typeof url !== "string" || !url.trim()) return null;
    const value = url.trim();
    if (image && /^data:image\/(png|gif|jpe?g|webp|svg\+xml)[;,]/i.test(value)) return value;
    try {
      const parsed = new URL(value, window.location.href);
      if (["http:", "https:"].includes(parsed.protocol)) return parsed.href;
      if (!image && parsed.protocol === "mailto:") return parsed.href;
    } catch (e) {
      /* not a URL */
    }
    return null;
  }

  function link(url, children) {
    const href = safeUrl(url);
    if (!href) return el("span", {}, children);
    return el("a", { href, target: "_blank", rel: "noopener noreferrer" }, children);
  }

  // -- markdown (the subset Stream clients render in a message) ----------------------

  const INLINE = [
    { kind: "code", re: /`([^`\n]+)`/ },
    { kind: "link", re: /\[([^\]\n]+)\]\(([^)\s]+)\)/ },
    { kind: "strong", re: /\*\*([^*\n]+?)\*\*|__([^_\n]+?)__/ },
    { kind: "del", re: /~~([^~\n]+?)~~/ },
    { kind: "em", re: /\*([^*\n]+?)\*|(?:^|(?<=[\s(]))_([^_\n]+?)_(?=$|[\s).,!?;:])/ },
    { kind: "url", re: /\bhttps?:\/\/[^\s<>"]*[^\s<>".,;:!?)\]'’]/ },
  ];

  function inline(text) {
    const out = [];
    let rest = text;
    while (rest) {
      let best = null;
      for (const rule of INLINE) {
        const m = rule.re.exec(rest);
        if (m && (best === null || m.index < best.m.index)) best = { rule, m };
      }
      if (!best) {
        out.push(document.createTextNode(rest));
        break;
      }
      const { rule, m } = best;
      if (m.index) out.push(document.createTextNode(rest.slice(0, m.index)));
      const inner = m[1] !== undefined ? m[1] : m[2];
      if (rule.kind === "code") out.push(el("code", { text: inner }));
      else if (rule.kind === "link") out.push(link(m[2], inline(m[1])));
      else if (rule.kind === "url") out.push(link(m[0], [m[0]]));
      else out.push(el(rule.kind, {}, inline(inner)));
      rest = rest.slice(m.index + m[0].length);
    }
    return out;
  }

  /** A fragment with ``text`` rendered as markdown: bold, italic, strike, code, links. */
  function markdown(text) {
    const frag = document.createDocumentFragment();
    const parts = String(text || "").split(/```(?:[a-z0-9_-]*\n)?([\s\S]*?)```/i);
    parts.forEach((part, i) => {
      if (i % 2 === 1) {
        frag.append(el("pre", {}, el("code", { text: part.replace(/\n$/, "") })));
        return;
      }
      const lines = part.split("\n");
      lines.forEach((line, j) => {
        if (j) frag.append(el("br"));
        frag.append(...inline(line));
      });
    });
    return frag;
  }

  // -- attachments ------------------------------------------------------------------

  function actionButtons(actions, onAction) {
    if (!Array.isArray(actions) || !actions.length) return null;
    return el(
      "div",
      { class: "att-actions" },
      actions.map((action) => {
        const button = el("button", {
          type: "button",
          class: `action action--${action.style || "default"}`,
          text: action.text || action.value || action.name,
          dataset: { name: action.name || "", value: action.value || "" },
        });
        button.addEventListener("click", () =>
          onAction({ [String(action.name || "")]: String(action.value ?? "") }, button)
        );
        return button;
      })
    );
  }

  function imageOf(att) {
    const giphy = att.giphy || {};
    const rendition = giphy.fixed_height || giphy.original || {};
    return safeUrl(rendition.url || att.image_url || att.thumb_url, { image: true });
  }

  /** One attachment, with its buttons calling ``onAction(form_data)``. */
  function attachment(att, onAction) {
    const kind = att.type || "";
    const box = el("div", {
      class: `attachment att-${kind.replace(/[^a-z0-9_-]/gi, "") || "unknown"}`,
      dataset: { type: kind },
    });
    if (att.color) box.style.borderLeftColor = att.color;
    if (att.pretext) box.append(el("div", { class: "att-pretext" }, markdown(att.pretext)));
    if (att.author_name) {
      box.append(el("div", { class: "att-author" }, link(att.author_link, [att.author_name])));
    }
    const src = imageOf(att);
    if (src) {
      const img = el("img", { src, alt: att.title || att.fallback || "", loading: "lazy" });
      box.append(el("div", { class: "att-media" }, img));
      if (kind === "giphy") box.append(el("div", { class: "att-giphy-label", text: "GIPHY" }));
    }
    if (att.title) {
      const title = att.title_link ? link(att.title_link, [att.title]) : el("span", { text: att.title });
      box.append(el("div", { class: "att-title" }, title));
    }
    if (att.text) box.append(el("div", { class: "att-text" }, markdown(att.text)));
    if (Array.isArray(att.fields) && att.fields.length) {
      box.append(
        el(
          "dl",
          { class: "att-fields" },
          att.fields.map((f) =>
            el("div", { class: f.short ? "field field--short" : "field" }, [
              el("dt", { text: f.title || "" }),
              el("dd", {}, markdown(f.value || "")),
            ])
          )
        )
      );
    }
    if (att.footer) box.append(el("div", { class: "att-footer", text: att.footer }));
    const buttons = actionButtons(att.actions, onAction);
    if (buttons) {
      box.append(buttons);
      const routed = kind === "giphy" || kind === "image" || att.title_link || att.og_scrape_url;
      if (!routed) {
        box.append(
          el("div", {
            class: "att-warning",
            text: "Stream's React SDK hides these buttons: give the attachment a title_link or type giphy/image.",
          })
        );
      }
    }
    return box;
  }

  // -- MML --------------------------------------------------------------------------

  class MMLError extends Error {}

  function mmlChildren(node, ctx) {
    const out = [];
    for (const child of node.childNodes) {
      if (child.nodeType === Node.TEXT_NODE) {
        if (child.nodeValue.trim()) out.push(el("p", { class: "mml-text", text: child.nodeValue.trim() }));
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
    md: (n) => el("div", { class: "mml-md" }, markdown(n.textContent)),
    icon: (n) => el("span", { class: "mml-icon", title: "Material icon", text: attr(n, "name") || "icon" }),
    image: (n) => {
      const src = safeUrl(attr(n, "src"), { image: true });
      return src
        ? el("img", { class: "mml-image", src, alt: attr(n, "alt") || "", title: attr(n, "title") })
        : el("span", { class: "mml-missing", text: `[image ${attr(n, "alt") || ""}]` });
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
    return render(node, ctx);
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

  // -- a whole message --------------------------------------------------------------

  function timeOf(message) {
    const date = new Date(message.created_at || Date.now());
    return isNaN(date) ? "" : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  /**
   * One message as a list item. ``handlers.action(form_data, button)`` is called for a
   * button click or an MML submit.
   */
  function message(msg, handlers) {
    const type = msg.type || "regular";
    const user = msg.user || {};
    const name = user.name || user.id || "someone";
    const item = el("li", { class: `msg msg--${type.replace(/[^a-z]/g, "")}`, dataset: { type, id: msg.id || "" } });
    item.append(el("div", { class: "avatar", "aria-hidden": "true", text: name.slice(0, 1).toUpperCase() }));
    const body = el("div", { class: "msg-body" });
    const meta = el("div", { class: "msg-meta" }, [
      el("span", { class: "author", text: name }),
      el("time", { text: timeOf(msg) }),
    ]);
    if (msg.command) meta.append(el("span", { class: "badge", text: `/${msg.command}` }));
    for (const note of handlers.badges || []) meta.append(el("span", { class: "badge badge--note", text: note }));
    body.append(meta);
    const bubble = el("div", { class: "bubble" });
    if (msg.text) bubble.append(el("div", { class: "msg-text" }, markdown(msg.text)));
    const atts = Array.isArray(msg.attachments) ? msg.attachments : [];
    if (atts.length) {
      bubble.append(el("div", { class: "attachments" }, atts.map((a) => attachment(a || {}, handlers.action))));
    }
    if (msg.mml) bubble.append(mml(msg.mml, handlers.action));
    if (!bubble.childNodes.length) bubble.append(el("div", { class: "msg-text msg-empty", text: "(empty message)" }));
    body.append(bubble);
    if (handlers.problem) body.append(el("div", { class: "msg-problem", text: handlers.problem }));
    if (type === "ephemeral" || type === "error") {
      body.append(el("div", { class: "only-you", text: "Only visible to you" }));
    }
    item.append(body);
    return item;
  }

  window.BotkitRender = { el, markdown, attachment, mml, message, formData, safeUrl };
})();
