// A small Markdown renderer for the model's answers that never parses HTML: it builds DOM nodes and puts every
// piece of the model's text in with textContent / text nodes, so `<script>` or `<img onerror=…>` stay text.
// Whitelist: paragraphs, headings, fenced code, bullet and numbered lists, quotes, `code`, **bold**, *emphasis*
// and [links](https://…) to http(s) addresses only.

const INLINE = /(`[^`\n]+`)|(\*\*[^*\n]+\*\*)|(\*[^*\s][^*\n]*\*|_[^_\s][^_\n]*_)|(\[[^\]\n]+\]\([^)\s]+\))/g;
const SAFE_URL = /^(https?:\/\/|mailto:)/i;

/** The answer as a DocumentFragment of whitelisted elements. */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  const lines = text.replace(/\r\n?/g, "\n").split("\n");
  let index = 0;
  while (index < lines.length) {
    const line = lines[index];
    if (!line.trim()) {
      index += 1;
    } else if (line.startsWith("```")) {
      index = codeBlock(fragment, lines, index + 1);
    } else if (/^#{1,6} /.test(line)) {
      const level = Math.min(line.indexOf(" ") + 2, 6); // "#" is an h3: the answer sits under the page's h2
      fragment.append(element(`h${level}`, inline(line.slice(line.indexOf(" ") + 1))));
      index += 1;
    } else if (listKind(line)) {
      index = list(fragment, lines, index);
    } else {
      index = block(fragment, lines, index);
    }
  }
  return fragment;
}

function codeBlock(parent, lines, index) {
  const body = [];
  while (index < lines.length && !lines[index].startsWith("```")) body.push(lines[index++]);
  const code = document.createElement("code");
  code.textContent = body.join("\n");
  parent.append(element("pre", [code]));
  return index + 1; // past the closing fence
}

function listKind(line) {
  if (/^\s*[-*+] /.test(line)) return "ul";
  if (/^\s*\d+[.)] /.test(line)) return "ol";
  return null;
}

function list(parent, lines, index) {
  const kind = listKind(lines[index]);
  const listElement = document.createElement(kind);
  while (index < lines.length && listKind(lines[index]) === kind) {
    listElement.append(element("li", inline(lines[index].replace(/^\s*([-*+]|\d+[.)]) /, ""))));
    index += 1;
  }
  parent.append(listElement);
  return index;
}

/** A paragraph (or a quote: lines starting with ">") up to a blank line or another kind of block. */
function block(parent, lines, index) {
  const quote = lines[index].startsWith(">");
  const body = [];
  while (index < lines.length && lines[index].trim() && lines[index].startsWith(">") === quote
         && !lines[index].startsWith("```") && !/^#{1,6} /.test(lines[index]) && !listKind(lines[index])) {
    body.push(quote ? lines[index].replace(/^>\s?/, "") : lines[index]);
    index += 1;
  }
  const paragraph = element("p", body.flatMap((line, at) => (at ? [document.createElement("br")] : []).concat(
    inline(line))));
  parent.append(quote ? element("blockquote", [paragraph]) : paragraph);
  return index;
}

/** Text with inline marks, as nodes; everything the model wrote stays a text node. */
function inline(text) {
  const nodes = [];
  let last = 0;
  for (const match of text.matchAll(INLINE)) {
    nodes.push(document.createTextNode(text.slice(last, match.index)));
    nodes.push(mark(match));
    last = match.index + match[0].length;
  }
  nodes.push(document.createTextNode(text.slice(last)));
  return nodes;
}

function mark([whole, code, strong, emphasis, link]) {
  if (code) return element("code", [document.createTextNode(whole.slice(1, -1))]);
  if (strong) return element("strong", [document.createTextNode(whole.slice(2, -2))]);
  if (emphasis) return element("em", [document.createTextNode(whole.slice(1, -1))]);
  const [, label, url] = /^\[([^\]]+)\]\((.+)\)$/.exec(link);
  if (!SAFE_URL.test(url)) return document.createTextNode(whole); // javascript: and friends stay text
  const anchor = element("a", [document.createTextNode(label)]);
  anchor.href = url;
  anchor.rel = "noopener noreferrer";
  return anchor;
}

function element(tag, children) {
  const node = document.createElement(tag);
  node.append(...children);
  return node;
}
