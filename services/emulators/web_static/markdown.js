// A safe subset of the Markdown Mattermost renders (commonmark + GFM tables and strikethrough,
// single newlines kept as line breaks, bare URLs linked), written for this page.
// Safety: it builds DOM nodes and sets text with createTextNode only, never innerHTML, so a post
// cannot bring markup; a link keeps its href only for http, https and mailto (Mattermost's
// utils/url isUrlSafe refuses javascript:, data: and vbscript:).
(function () {
  'use strict';

  var SAFE_SCHEMES = /^(https?:|mailto:)/i;
  var BARE_URL = /^(https?:\/\/[^\s<>"')\]]+[^\s<>"')\].,;:!?])/i;

  function el(tag, className, children) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    (children || []).forEach(function (child) {
      node.appendChild(typeof child === 'string' ? document.createTextNode(child) : child);
    });
    return node;
  }

  function safeUrl(url) {
    var trimmed = String(url || '').trim();
    return SAFE_SCHEMES.test(trimmed) ? trimmed : null;
  }

  function link(url, children) {
    var href = safeUrl(url);
    if (href === null) return el('span', '', children);
    var a = el('a', 'markdown__link', children);
    a.href = href;
    a.rel = 'noopener noreferrer';
    a.target = '_blank';
    return a;
  }

  // Where the closing delimiter of an emphasis opened at `from` is, or -1.
  function closer(text, delim, from) {
    var at = text.indexOf(delim, from);
    while (at !== -1) {
      if (at > from && text[at - 1] !== ' ' && text[at - 1] !== '\\') {
        if (delim !== '_' && delim !== '__') return at;
        var after = text[at + delim.length];
        if (after === undefined || !/[A-Za-z0-9]/.test(after)) return at;
      }
      at = text.indexOf(delim, at + 1);
    }
    return -1;
  }

  // Inline markup of `text` appended to `parent`.
  function inline(text, parent) {
    var buffer = '';
    function flush() {
      if (buffer) parent.appendChild(document.createTextNode(buffer));
      buffer = '';
    }
    var i = 0;
    while (i < text.length) {
      var ch = text[i];
      var rest = text.slice(i);
      var m;
      if (ch === '\\' && i + 1 < text.length && /[\\`*_{}\[\]()#+\-.!|~>]/.test(text[i + 1])) {
        buffer += text[i + 1];
        i += 2;
        continue;
      }
      if (ch === '\n') {
        flush();
        parent.appendChild(document.createElement('br'));
        i += 1;
        continue;
      }
      if (ch === '`') {
        m = /^(`+)([\s\S]*?[^`])\1(?!`)/.exec(rest);
        if (m) {
          flush();
          parent.appendChild(el('code', 'markdown__code', [m[2].replace(/^ (.*) $/, '$1')]));
          i += m[0].length;
          continue;
        }
      }
      if (ch === '[') {
        m = /^\[([^\]\n]*)\]\(\s*([^\s()]+(?:\([^\s()]*\))?[^\s()]*)\s*\)/.exec(rest);
        if (m) {
          flush();
          var label = el('span', '', []);
          inline(m[1], label);
          parent.appendChild(link(m[2], Array.prototype.slice.call(label.childNodes)));
          i += m[0].length;
          continue;
        }
      }
      if (ch === '<') {
        m = /^<((?:https?|mailto):[^\s<>]+)>/i.exec(rest);
        if (m) {
          flush();
          parent.appendChild(link(m[1], [m[1]]));
          i += m[0].length;
          continue;
        }
      }
      if ((ch === 'h' || ch === 'H') && (i === 0 || /[\s(]/.test(text[i - 1]))) {
        m = BARE_URL.exec(rest);
        if (m) {
          flush();
          parent.appendChild(link(m[1], [m[1]]));
          i += m[1].length;
          continue;
        }
      }
      if (ch === '@' && (i === 0 || /[\s(]/.test(text[i - 1]))) {
        m = /^@[A-Za-z0-9][A-Za-z0-9.\-_]*[A-Za-z0-9_]|^@[A-Za-z0-9]/.exec(rest);
        if (m) {
          flush();
          parent.appendChild(el('span', 'mention', [m[0]]));
          i += m[0].length;
          continue;
        }
      }
      var emphasis = null;
      [['**', 'strong'], ['__', 'strong'], ['~~', 'del'], ['*', 'em'], ['_', 'em']].some(function (pair) {
        var delim = pair[0];
        if (rest.indexOf(delim) !== 0 || rest[delim.length] === ' ' || rest[delim.length] === undefined) return false;
        if (delim[0] === '_' && i > 0 && /[A-Za-z0-9]/.test(text[i - 1])) return false;
        var end = closer(text, delim, i + delim.length);
        if (end === -1) return false;
        emphasis = {tag: pair[1], inner: text.slice(i + delim.length, end), next: end + delim.length};
        return true;
      });
      if (emphasis) {
        flush();
        var node = el(emphasis.tag, '', []);
        inline(emphasis.inner, node);
        parent.appendChild(node);
        i = emphasis.next;
        continue;
      }
      buffer += ch;
      i += 1;
    }
    flush();
    return parent;
  }

  function splitRow(line) {
    var row = line.trim().replace(/^\|/, '').replace(/\|$/, '');
    var cells = [];
    var cell = '';
    for (var i = 0; i < row.length; i++) {
      if (row[i] === '\\' && row[i + 1] === '|') {
        cell += '|';
        i += 1;
      } else if (row[i] === '|') {
        cells.push(cell.trim());
        cell = '';
      } else {
        cell += row[i];
      }
    }
    cells.push(cell.trim());
    return cells;
  }

  var TABLE_RULE = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;
  var LIST_ITEM = /^(\s*)([-*+]|\d+[.)])\s+(.*)$/;
  var FENCE = /^\s*(```|~~~)\s*([\w+-]*)\s*$/;

  function table(lines, start, parent) {
    var header = splitRow(lines[start]);
    var aligns = splitRow(lines[start + 1]).map(function (spec) {
      if (/^:-+:$/.test(spec)) return 'center';
      if (/-+:$/.test(spec)) return 'right';
      return '';
    });
    var wrap = el('div', 'table-responsive', []);
    var tbl = el('table', 'markdown__table', []);
    var head = el('tr', '', header.map(function (cell, n) {
      var th = inline(cell, el('th', '', []));
      if (aligns[n]) th.style.textAlign = aligns[n];
      return th;
    }));
    tbl.appendChild(el('thead', '', [head]));
    var body = el('tbody', '', []);
    var i = start + 2;
    while (i < lines.length && lines[i].indexOf('|') !== -1 && lines[i].trim()) {
      var cells = splitRow(lines[i]);
      body.appendChild(el('tr', '', header.map(function (_, n) {
        var td = inline(cells[n] || '', el('td', '', []));
        if (aligns[n]) td.style.textAlign = aligns[n];
        return td;
      })));
      i += 1;
    }
    tbl.appendChild(body);
    wrap.appendChild(tbl);
    parent.appendChild(wrap);
    return i;
  }

  function list(lines, start, parent) {
    var first = LIST_ITEM.exec(lines[start]);
    var indent = first[1].length;
    var ordered = /\d/.test(first[2]);
    var node = el(ordered ? 'ol' : 'ul', 'markdown__list', []);
    if (ordered && parseInt(first[2], 10) !== 1) node.start = parseInt(first[2], 10);
    var i = start;
    while (i < lines.length) {
      var m = LIST_ITEM.exec(lines[i]);
      if (!m || m[1].length < indent || /\d/.test(m[2]) !== ordered) break;
      if (m[1].length > indent) {
        i = list(lines, i, node.lastChild || node);
        continue;
      }
      var item = [m[3]];
      i += 1;
      // A continuation line (indented, not a new item) belongs to the item.
      while (i < lines.length && lines[i].trim() && !LIST_ITEM.exec(lines[i]) && /^\s{2,}/.test(lines[i])) {
        item.push(lines[i].trim());
        i += 1;
      }
      node.appendChild(inline(item.join('\n'), el('li', '', [])));
    }
    parent.appendChild(node);
    return i;
  }

  function blocks(text, parent) {
    var lines = String(text || '').replace(/\r\n?/g, '\n').split('\n');
    var i = 0;
    var paragraph = [];
    function endParagraph() {
      if (paragraph.length) parent.appendChild(inline(paragraph.join('\n'), el('p', '', [])));
      paragraph = [];
    }
    while (i < lines.length) {
      var line = lines[i];
      var m;
      if (!line.trim()) {
        endParagraph();
        i += 1;
      } else if ((m = FENCE.exec(line))) {
        endParagraph();
        var code = [];
        i += 1;
        while (i < lines.length && lines[i].trim() !== m[1]) {
          code.push(lines[i]);
          i += 1;
        }
        i += 1;
        var codeNode = el('code', m[2] ? 'language-' + m[2].replace(/[^\w+-]/g, '') : '', [code.join('\n')]);
        parent.appendChild(el('pre', 'post-code', [codeNode]));
      } else if ((m = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line))) {
        endParagraph();
        parent.appendChild(inline(m[2], el('h' + m[1].length, 'markdown__heading', [])));
        i += 1;
      } else if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) {
        endParagraph();
        parent.appendChild(el('hr', '', []));
        i += 1;
      } else if (/^\s{0,3}>/.test(line)) {
        endParagraph();
        var quoted = [];
        while (i < lines.length && /^\s{0,3}>/.test(lines[i])) {
          quoted.push(lines[i].replace(/^\s{0,3}>\s?/, ''));
          i += 1;
        }
        parent.appendChild(blocks(quoted.join('\n'), el('blockquote', '', [])));
      } else if (line.indexOf('|') !== -1 && i + 1 < lines.length && TABLE_RULE.test(lines[i + 1])) {
        endParagraph();
        i = table(lines, i, parent);
      } else if (LIST_ITEM.exec(line) && !paragraph.length) {
        i = list(lines, i, parent);
      } else {
        paragraph.push(line);
        i += 1;
      }
    }
    endParagraph();
    return parent;
  }

  // The message rendered into a new <div class="markdown">.
  function render(text) {
    return blocks(text, el('div', 'markdown', []));
  }

  window.CpnMarkdown = {render: render, inline: inline, safeUrl: safeUrl};
})();
