// The chat page's third-party libraries (installed from npm, served by Django's staticfiles).
// Relative URLs, so this keeps working whatever STATIC_URL is: from /static/chat/vendor.js they
// resolve to /static/vendor/marked/marked.esm.js and so on.
import { marked } from "../vendor/marked/marked.esm.js";
import DOMPurify from "../vendor/dompurify/purify.es.mjs";
import hljs from "../vendor/highlight/es/highlight.min.js";

export { marked, DOMPurify, hljs };
