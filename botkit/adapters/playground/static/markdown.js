/* botkit playground: message text as Stream's React client formats it.
 *
 * stream-chat-react renders message text with react-markdown (remark, CommonMark rules,
 * GFM strikethrough), keeps every line break, turns raw HTML into plain text and links
 * bare URLs. This file follows CommonMark for what it supports: code spans, emphasis and
 * strong emphasis with the delimiter-run (flanking) rules, ~~strikethrough~~, inline
 * links, <autolinks>, bare http(s)/www URLs, backslash escapes, entities and fenced code
 * blocks. Anything else (lists, quotes, headings, tables) is shown as its plain text:
 * never a formatting the client would not do. So `**** **** **** 4242` stays literal,
 * as in the client, because a `****` run followed by a space cannot open emphasis.
 *
 * Output is built with createElement/textContent only: no text is parsed as HTML.
 */
(function () {
  "use strict";

  const PUNCT = /[\p{P}\p{S}]/u;
  const SPACE = /\s/u;
  const ESCAPABLE = /[!-/:-@[-`{-~]/;
  const ENTITY = /^&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});/;

  const isSpace = (ch) => ch === undefined || SPACE.test(ch);
  const isPunct = (ch) => ch !== undefined && PUNCT.test(ch);

  function decodeEntity(entity) {
    // Only a matched entity reference reaches the parser, never markup.
    const text = new DOMParser().parseFromString(entity, "text/html").documentElement.textContent;
    return text === "" ? entity : text;
  }

  /** http, https and mailto links are kept, as react-markdown's URL transform does. */
  function linkHref(url) {
    const value = String(url || "").trim();
    if (/^(https?:\/\/|mailto:)/i.test(value)) return value;
    if (/^www\./i.test(value)) return `http://${value}`;
    return null;
  }

  // -- inline nodes: a doubly linked list, as in CommonMark's reference algorithm ---------

  function node(kind, props) {
    return Object.assign({ kind, prev: null, next: null, children: null }, props);
  }

  class List {
    constructor() {
      this.first = null;
      this.last = null;
    }
    append(n) {
      n.prev = this.last;
      n.next = null;
      if (this.last) this.last.next = n;
      else this.first = n;
      this.last = n;
      return n;
    }
    remove(n) {
      if (n.prev) n.prev.next = n.next;
      else this.first = n.next;
      if (n.next) n.next.prev = n.prev;
      else this.last = n.prev;
      n.prev = n.next = null;
    }
    /** Move the nodes strictly between ``a`` and ``b`` into a new List. */
    cut(a, b) {
      const inner = new List();
      let cur = a.next;
      while (cur && cur !== b) {
        const next = cur.next;
        this.remove(cur);
        inner.append(cur);
        cur = next;
      }
      return inner;
    }
    insertAfter(a, n) {
      n.prev = a;
      n.next = a.next;
      if (a.next) a.next.prev = n;
      else this.last = n;
      a.next = n;
    }
  }

  // -- the inline parser ------------------------------------------------------------------

  function codeSpan(src, i) {
    let n = 0;
    while (src[i + n] === "`") n += 1;
    let j = i + n;
    while (j < src.length) {
      const k = src.indexOf("`", j);
      if (k < 0) break;
      let m = 0;
      while (src[k + m] === "`") m += 1;
      if (m === n) {
        let content = src.slice(i + n, k).replace(/\n/g, " ");
        if (content.length > 1 && content[0] === " " && content.at(-1) === " " && /[^ ]/.test(content)) {
          content = content.slice(1, -1);
        }
        return { end: k + m, content };
      }
      j = k + m;
    }
    return { end: i + n, content: null, run: src.slice(i, i + n) };
  }

  /** ``(destination "title")`` after a ``]``: the destination and where it ends, or null. */
  function inlineLink(src, i) {
    if (src[i] !== "(") return null;
    let j = i + 1;
    const skip = () => {
      while (j < src.length && /[ \t\n]/.test(src[j])) j += 1;
    };
    skip();
    let dest = "";
    if (src[j] === "<") {
      const close = src.indexOf(">", j);
      if (close < 0 || /[\n<]/.test(src.slice(j + 1, close))) return null;
      dest = src.slice(j + 1, close);
      j = close + 1;
    } else {
      let depth = 0;
      const start = j;
      while (j < src.length) {
        const ch = src[j];
        if (ch === "\\" && ESCAPABLE.test(src[j + 1] || "")) {
          j += 2;
          continue;
        }
        if (SPACE.test(ch) || /[\x00-\x1f]/.test(ch)) break;
        if (ch === "(") depth += 1;
        if (ch === ")") {
          if (depth === 0) break;
          depth -= 1;
        }
        j += 1;
      }
      if (depth !== 0) return null;
      dest = src.slice(start, j).replace(/\\([!-/:-@[-`{-~])/g, "$1");
    }
    const beforeTitle = j;
    skip();
    const quote = { '"': '"', "'": "'", "(": ")" }[src[j]];
    if (quote && j > beforeTitle) {
      const close = src.indexOf(quote, j + 1);
      if (close < 0) return null;
      j = close + 1;
      skip();
    }
    if (src[j] !== ")") return null;
    return { dest, end: j + 1 };
  }

  /** A bare URL starting at ``i`` (GFM autolink literal / linkify), or null. */
  function bareUrl(src, i) {
    const prev = src[i - 1];
    if (prev !== undefined && !/[\s*_~(]/.test(prev)) return null;
    const m = /^(?:https?:\/\/|www\.)[^\s<]+/i.exec(src.slice(i));
    if (!m) return null;
    let url = m[0];
    for (;;) {
      const trimmed = url.replace(/[?!.,:*_~'"]+$/, "");
      let next = trimmed;
      if (next.endsWith(")")) {
        const open = (next.match(/\(/g) || []).length;
        const close = (next.match(/\)/g) || []).length;
        if (close > open) next = next.slice(0, -1);
      }
      const entity = /&[A-Za-z0-9]+;$/.exec(next);
      if (entity) next = next.slice(0, entity.index);
      if (next === url) break;
      url = next;
    }
    if (/^www\.$/i.test(url) || /^https?:\/\/$/i.test(url)) return null;
    return { url, end: i + url.length };
  }

  function parseInline(src) {
    const list = new List();
    let delims = null; // top of the delimiter stack
    let brackets = null; // top of the bracket stack
    let text = "";
    const flush = () => {
      if (text) list.append(node("text", { value: text }));
      text = "";
    };
    const pushDelim = (d) => {
      d.prev = delims;
      d.next = null;
      if (delims) delims.next = d;
      delims = d;
    };
    const removeDelim = (d) => {
      if (d.prev) d.prev.next = d.next;
      if (d.next) d.next.prev = d.prev;
      else delims = d.prev;
    };

    function processEmphasis(bottom) {
      const openersBottom = {};
      let closer = bottom ? bottom.next : firstDelim();
      while (closer) {
        if (!closer.canClose) {
          closer = closer.next;
          continue;
        }
        const key = `${closer.char}${closer.canOpen ? 1 : 0}${closer.orig % 3}`;
        const floor = key in openersBottom ? openersBottom[key] : bottom;
        let opener = closer.prev;
        let found = false;
        while (opener && opener !== bottom && opener !== floor) {
          if (opener.char === closer.char && opener.canOpen) {
            if (closer.char === "~") {
              found = opener.count === closer.count;
            } else {
              const odd =
                (opener.canClose || closer.canOpen) &&
                (opener.orig + closer.orig) % 3 === 0 &&
                !(opener.orig % 3 === 0 && closer.orig % 3 === 0);
              found = !odd;
            }
            if (found) break;
          }
          opener = opener.prev;
        }
        if (!found) {
          openersBottom[key] = closer.prev;
          const next = closer.next;
          if (!closer.canOpen) removeDelim(closer);
          closer = next;
          continue;
        }
        let use;
        let kind;
        if (closer.char === "~") {
          use = closer.count;
          kind = "del";
        } else {
          use = closer.count >= 2 && opener.count >= 2 ? 2 : 1;
          kind = use === 2 ? "strong" : "em";
        }
        opener.count -= use;
        closer.count -= use;
        opener.node.value = opener.node.value.slice(use);
        closer.node.value = closer.node.value.slice(use);
        // delimiters between the two are now plain text
        let between = closer.prev;
        while (between && between !== opener) {
          const p = between.prev;
          removeDelim(between);
          between = p;
        }
        const wrapped = node(kind, { children: list.cut(opener.node, closer.node) });
        list.insertAfter(opener.node, wrapped);
        if (opener.count === 0) {
          list.remove(opener.node);
          removeDelim(opener);
        }
        if (closer.count === 0) {
          const next = closer.next;
          list.remove(closer.node);
          removeDelim(closer);
          closer = next;
        }
      }
      while (delims && delims !== bottom) removeDelim(delims);
    }

    function firstDelim() {
      let d = delims;
      while (d && d.prev) d = d.prev;
      return d;
    }

    let i = 0;
    while (i < src.length) {
      const ch = src[i];
      if (ch === "\\") {
        const next = src[i + 1];
        if (next === "\n") {
          flush();
          list.append(node("br"));
          i += 2;
          continue;
        }
        if (next !== undefined && ESCAPABLE.test(next)) {
          text += next;
          i += 2;
          continue;
        }
        text += ch;
        i += 1;
        continue;
      }
      if (ch === "\n") {
        text = text.replace(/ +$/, "");
        flush();
        list.append(node("br"));
        i += 1;
        while (src[i] === " " || src[i] === "\t") i += 1;
        continue;
      }
      if (ch === "`") {
        const span = codeSpan(src, i);
        if (span.content === null) {
          text += span.run;
        } else {
          flush();
          list.append(node("code", { value: span.content }));
        }
        i = span.end;
        continue;
      }
      if (ch === "&") {
        const m = ENTITY.exec(src.slice(i));
        if (m) {
          text += decodeEntity(m[0]);
          i += m[0].length;
          continue;
        }
      }
      if (ch === "<") {
        const m = /^<((?:https?:\/\/|mailto:)[^\s<>]*)>/i.exec(src.slice(i));
        if (m) {
          flush();
          list.append(node("link", { href: linkHref(m[1]), children: textList(m[1]) }));
          i += m[0].length;
          continue;
        }
      }
      if (ch === "h" || ch === "H" || ch === "w" || ch === "W") {
        const found = bareUrl(src, i);
        if (found) {
          flush();
          list.append(node("link", { href: linkHref(found.url), children: textList(found.url), auto: true }));
          i = found.end;
          continue;
        }
      }
      if (ch === "*" || ch === "_" || ch === "~") {
        let n = 0;
        while (src[i + n] === ch) n += 1;
        const before = src[i - 1];
        const after = src[i + n];
        const left = !isSpace(after) && (!isPunct(after) || isSpace(before) || isPunct(before));
        const right = !isSpace(before) && (!isPunct(before) || isSpace(after) || isPunct(after));
        let canOpen = left;
        let canClose = right;
        if (ch === "_") {
          canOpen = left && (!right || isPunct(before));
          canClose = right && (!left || isPunct(after));
        }
        flush();
        const textNode = list.append(node("text", { value: src.slice(i, i + n) }));
        // GFM strikethrough (singleTilde off): only runs of exactly two tildes
        if ((ch !== "~" || n === 2) && (canOpen || canClose)) {
          pushDelim({ char: ch, count: n, orig: n, canOpen, canClose, node: textNode });
        }
        i += n;
        continue;
      }
      if (ch === "[") {
        flush();
        const textNode = list.append(node("text", { value: "[" }));
        brackets = { node: textNode, delims, active: true, prev: brackets };
        i += 1;
        continue;
      }
      if (ch === "]" && brackets) {
        const opener = brackets;
        const link = opener.active ? inlineLink(src, i + 1) : null;
        if (!link) {
          brackets = opener.prev;
          text += "]";
          i += 1;
          continue;
        }
        flush();
        processEmphasis(opener.delims);
        const children = list.cut(opener.node, null);
        unlinkAutolinks(children);
        list.remove(opener.node);
        list.append(node("link", { href: linkHref(link.dest), children }));
        brackets = opener.prev;
        for (let b = brackets; b; b = b.prev) b.active = false; // no links inside links
        i = link.end;
        continue;
      }
      text += ch;
      i += 1;
    }
    flush();
    processEmphasis(null);
    return list;
  }

  function textList(value) {
    const list = new List();
    list.append(node("text", { value }));
    return list;
  }

  function unlinkAutolinks(list) {
    for (let n = list.first; n; n = n.next) {
      if (n.kind === "link" && n.auto) {
        n.kind = "text";
        n.value = n.children.first.value;
        n.children = null;
      } else if (n.children) {
        unlinkAutolinks(n.children);
      }
    }
  }

  function toDom(list, parent) {
    for (let n = list.first; n; n = n.next) {
      if (n.kind === "text") {
        if (n.value) parent.append(document.createTextNode(n.value));
      } else if (n.kind === "br") {
        parent.append(document.createElement("br"));
      } else if (n.kind === "code") {
        const code = document.createElement("code");
        code.textContent = n.value;
        parent.append(code);
      } else if (n.kind === "link") {
        const a = document.createElement(n.href ? "a" : "span");
        if (n.href) {
          a.href = n.href;
          a.target = "_blank";
          a.rel = "noopener noreferrer";
        }
        toDom(n.children, a);
        parent.append(a);
      } else {
        const wrap = document.createElement(n.kind);
        toDom(n.children, wrap);
        parent.append(wrap);
      }
    }
    return parent;
  }

  // -- blocks: fenced code, and paragraphs whose line breaks are all kept -------------

  function blocks(text) {
    const lines = String(text || "").replace(/\r\n?/g, "\n").split("\n");
    const out = [];
    let para = [];
    const endPara = () => {
      if (para.length) out.push({ kind: "p", text: para.join("\n") });
      para = [];
    };
    for (let i = 0; i < lines.length; i += 1) {
      const fence = /^( {0,3})(`{3,}|~{3,})(.*)$/.exec(lines[i]);
      if (fence && !(fence[2][0] === "`" && fence[3].includes("`"))) {
        endPara();
        const indent = fence[1].length;
        const code = [];
        let j = i + 1;
        const close = new RegExp(`^ {0,3}${fence[2][0] === "`" ? "`" : "~"}{${fence[2].length},} *$`);
        while (j < lines.length && !close.test(lines[j])) {
          code.push(lines[j].replace(new RegExp(`^ {0,${indent}}`), ""));
          j += 1;
        }
        out.push({ kind: "pre", text: code.join("\n") });
        i = j;
        continue;
      }
      if (!lines[i].trim()) {
        endPara();
        out.push({ kind: "blank" });
        continue;
      }
      para.push(para.length ? lines[i].replace(/^\s+/, "") : lines[i].replace(/^ {0,3}/, ""));
    }
    endPara();
    return out;
  }

  /** A fragment with ``text`` formatted as Stream's React client formats message text. */
  function markdown(text) {
    const frag = document.createDocumentFragment();
    const parts = blocks(text);
    let previous = null;
    for (const part of parts) {
      if (part.kind === "blank") {
        // the client keeps blank lines between paragraphs as line breaks
        if (previous && previous !== "blank") frag.append(document.createElement("br"));
        frag.append(document.createElement("br"));
      } else if (part.kind === "pre") {
        const pre = document.createElement("pre");
        const code = document.createElement("code");
        code.textContent = part.text;
        pre.append(code);
        frag.append(pre);
      } else {
        if (previous === "p") frag.append(document.createElement("br"));
        toDom(parseInline(part.text.replace(/[ \t]+$/, "")), frag);
      }
      previous = part.kind;
    }
    while (frag.lastChild && frag.lastChild.nodeName === "BR") frag.lastChild.remove();
    while (frag.firstChild && frag.firstChild.nodeName === "BR") frag.firstChild.remove();
    return frag;
  }

  window.BotkitMarkdown = { markdown, linkHref };
})();
