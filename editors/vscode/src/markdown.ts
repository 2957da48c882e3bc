// Markdown for lspilot's webviews (the explanation panel, the chat view), and the page around it:
// nothing remote ever loads. No vscode import: tests/editors/test_vscode.py runs this in plain Node.
import * as crypto from 'crypto';
import MarkdownIt from 'markdown-it';
import { HIGHLIGHT_STYLE, highlightCode } from './highlight';

/**
 * A renderer for the model's Markdown: raw HTML escaped, images only links, code blocks highlighted
 * (highlight.js escapes the code; a language it does not know is escaped by markdown-it as before).
 */
export function createMarkdown(): MarkdownIt {
  return noRemoteContent(
    new MarkdownIt({ html: false, linkify: true, breaks: false, highlight: (code, language) => highlightCode(code, language) ?? '' }),
  );
}

/**
 * Markdown images become plain links (`<a href>` with the alt text, or the URL), so rendering an
 * answer never fetches anything; the user may still follow the link.
 */
export function noRemoteContent(md: MarkdownIt): MarkdownIt {
  md.renderer.rules.image = (tokens, index) => {
    const token = tokens[index];
    const src = token.attrGet('src') ?? '';
    const alt = token.children?.map((child) => child.content).join('') || token.content || '';
    const label = alt.trim() !== '' ? `${alt} (image: ${src})` : `image: ${src}`;
    const href = md.validateLink(src) ? ` href="${md.utils.escapeHtml(md.normalizeLink(src))}"` : '';
    return `<a class="image-link"${href}>${md.utils.escapeHtml(label)}</a>`;
  };
  return md;
}

/**
 * The Content-Security-Policy of lspilot's webviews. Nothing remote, not even the webview's own
 * resource origin (they load no files): the text is the model's, and a prompt-injected answer must
 * not be able to make a webview fetch anything (an image URL carrying the user's code). Only the
 * page's own script (by its nonce) and inline styles run.
 */
export function strictCsp(nonce: string): string {
  return ["default-src 'none'", "style-src 'unsafe-inline'", `script-src 'nonce-${nonce}'`].join('; ');
}

/** A webview's whole page under `strictCsp`: `script` runs with the page's nonce. */
export function webviewPage(page: { title: string; style: string; body: string; script: string; bodyAttributes?: string }): string {
  const nonce = crypto.randomBytes(16).toString('base64');
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${strictCsp(nonce)}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>${escapeHtml(page.title)}</title>
<style>
${page.style}
</style>
</head>
<body ${page.bodyAttributes ?? ''}>
${page.body}
<script nonce="${nonce}">
${page.script}
</script>
</body>
</html>`;
}

/** The styles both webviews give rendered Markdown. */
export const MARKDOWN_STYLE = `
  pre { background: var(--vscode-textCodeBlock-background); padding: 8px; overflow-x: auto; border-radius: 3px; }
  code { font-family: var(--vscode-editor-font-family); font-size: var(--vscode-editor-font-size); }
  a { color: var(--vscode-textLink-foreground); }
${HIGHLIGHT_STYLE}`;

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c);
}
