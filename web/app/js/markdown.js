// AI replies rendered as Markdown, safely. Three layers:
// 1. marked is told to print raw HTML as text (`html` renderer escapes it),
//    and images as plain links (no requests to hosts the AI chose);
// 2. DOMPurify then keeps only an allow-list of tags and attributes;
// 3. links keep their href only for http(s) and mailto, and open in a new
//    tab without access to this page.
// The result is a DocumentFragment; no HTML string is ever assigned.

import { Marked } from '../vendor/marked.esm.js';
import DOMPurify from '../vendor/purify.es.js';

const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);

const SAFE_URL = /^(?:https?:|mailto:)/i;

const marked = new Marked({
  gfm: true,
  breaks: false,
  async: false,
  renderer: {
    html({ text, raw }) {
      return escapeHtml(text ?? raw ?? '');
    },
    image({ href, text }) {
      const label = escapeHtml(text || href || 'image');
      return SAFE_URL.test(href ?? '') ? `<a href="${escapeHtml(href)}">${label}</a>` : label;
    },
  },
});

const ALLOWED_TAGS = ['p', 'br', 'strong', 'em', 'del', 's', 'code', 'pre', 'blockquote', 'ul', 'ol', 'li', 'a',
  'h1', 'h2', 'h3', 'h4', 'h5', 'h6', 'hr', 'table', 'thead', 'tbody', 'tr', 'th', 'td'];
const ALLOWED_ATTR = ['href', 'title', 'align', 'start'];

let hooked = false;
function hook() {
  if (hooked) return;
  hooked = true;
  DOMPurify.addHook('afterSanitizeAttributes', (node) => {
    if (node.nodeName === 'A') {
      const href = node.getAttribute('href');
      if (!href || !SAFE_URL.test(href.trim())) {
        node.removeAttribute('href');
      } else {
        node.setAttribute('target', '_blank');
        node.setAttribute('rel', 'noopener noreferrer nofollow');
      }
    }
  });
}

/** Markdown text -> a sanitised DocumentFragment. */
export function renderMarkdown(text) {
  hook();
  let html;
  try {
    html = marked.parse(String(text ?? ''));
  } catch {
    // Never show nothing: fall back to the text itself.
    const f = document.createDocumentFragment();
    f.append(document.createTextNode(String(text ?? '')));
    return f;
  }
  return DOMPurify.sanitize(html, {
    ALLOWED_TAGS,
    ALLOWED_ATTR,
    ADD_ATTR: ['target', 'rel'],
    ALLOW_DATA_ATTR: false,
    RETURN_DOM_FRAGMENT: true,
  });
}
