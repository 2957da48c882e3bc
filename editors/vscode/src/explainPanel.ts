import * as crypto from 'crypto';
import MarkdownIt from 'markdown-it';
import * as path from 'path';
import * as vscode from 'vscode';

export type SessionStatus = 'waiting' | 'streaming' | 'done' | 'cancelled' | 'failed';

interface Session {
  id: number;
  title: string;
  text: string;
  status: SessionStatus;
  detail?: string;
}

/**
 * A markdown panel beside the editor that renders an explanation while it streams in.
 * It shows one session at a time: the most recent explanation.
 */
export class ExplainPanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private session: Session | undefined;
  private nextId = 1;
  private renderTimer: NodeJS.Timeout | undefined;
  private readonly md = noRemoteContent(new MarkdownIt({ html: false, linkify: true, breaks: false }));

  /** Opens (or reuses) the panel for a new explanation, shows it empty and returns its session id. */
  start(title: string, status: SessionStatus = 'waiting'): number {
    const id = this.nextId++;
    this.session = { id, title, text: '', status };
    this.ensurePanel();
    this.renderNow();
    return id;
  }

  /** Adds streamed text to session `id` (ignored once a newer session took the panel). */
  append(id: number, delta: string): void {
    if (this.session?.id !== id) {
      return;
    }
    this.session.text += delta;
    if (this.session.status === 'waiting') {
      this.session.status = 'streaming';
    }
    this.scheduleRender();
  }

  /** Ends the session; `text`, when given, replaces what streamed (the server's final answer). */
  finish(id: number, status: SessionStatus, text?: string, detail?: string): void {
    if (this.session?.id !== id) {
      return;
    }
    if (text !== undefined && text.length >= this.session.text.length) {
      this.session.text = text;
    }
    this.session.status = status;
    this.session.detail = detail;
    this.renderNow();
  }

  private ensurePanel(): void {
    if (this.panel !== undefined) {
      if (!this.panel.visible) {
        this.panel.reveal(vscode.ViewColumn.Beside, true);
      }
      return;
    }
    this.panel = vscode.window.createWebviewPanel(
      'lspilot.explanation',
      'lspilot: Explanation',
      { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
      { enableScripts: true, retainContextWhenHidden: true, localResourceRoots: [] },
    );
    this.panel.webview.html = this.shell();
    this.panel.onDidDispose(() => {
      this.panel = undefined;
    });
    this.panel.webview.onDidReceiveMessage((message: { type?: string }) => {
      if (message?.type === 'ready') {
        this.renderNow();
      }
    });
  }

  private scheduleRender(): void {
    if (this.renderTimer !== undefined) {
      return;
    }
    this.renderTimer = setTimeout(() => {
      this.renderTimer = undefined;
      this.renderNow();
    }, 40);
  }

  private renderNow(): void {
    if (this.renderTimer !== undefined) {
      clearTimeout(this.renderTimer);
      this.renderTimer = undefined;
    }
    if (this.panel === undefined || this.session === undefined) {
      return;
    }
    const { id, title, text, status, detail } = this.session;
    const label: Record<SessionStatus, string> = {
      waiting: 'waiting for the model…',
      streaming: 'streaming…',
      done: 'done',
      cancelled: 'cancelled',
      failed: 'failed',
    };
    void this.panel.webview.postMessage({
      type: 'render',
      session: id,
      title,
      status,
      statusText: detail ? `${label[status]}: ${detail}` : label[status],
      html: this.md.render(text),
    });
  }

  private shell(): string {
    const nonce = crypto.randomBytes(16).toString('base64');
    // Nothing remote, not even the webview's own resource origin (the panel loads no files): the
    // text is the model's, and a prompt-injected answer must not be able to make the panel fetch
    // anything (an image URL carrying the user's code). Images are rendered as links instead.
    const csp = ["default-src 'none'", "style-src 'unsafe-inline'", `script-src 'nonce-${nonce}'`].join('; ');
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>lspilot: Explanation</title>
<style>
  body { font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); color: var(--vscode-foreground); padding: 0 16px 16px; line-height: 1.5; }
  header { position: sticky; top: 0; background: var(--vscode-editor-background); padding: 8px 0; border-bottom: 1px solid var(--vscode-panel-border, transparent); }
  #title { font-weight: 600; }
  #status { color: var(--vscode-descriptionForeground); font-size: 0.9em; }
  body[data-status="failed"] #status { color: var(--vscode-errorForeground); }
  pre { background: var(--vscode-textCodeBlock-background); padding: 8px; overflow-x: auto; border-radius: 3px; }
  code { font-family: var(--vscode-editor-font-family); font-size: var(--vscode-editor-font-size); }
  a { color: var(--vscode-textLink-foreground); }
</style>
</head>
<body data-status="waiting">
<header><div id="title"></div><div id="status"></div></header>
<main id="content"></main>
<script nonce="${nonce}">
  const vscode = acquireVsCodeApi();
  const content = document.getElementById('content');
  window.addEventListener('message', (event) => {
    const m = event.data;
    if (!m || m.type !== 'render') { return; }
    const atBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 24;
    document.getElementById('title').textContent = m.title;
    document.getElementById('status').textContent = m.statusText;
    document.body.dataset.status = m.status;
    document.body.dataset.session = String(m.session);
    content.innerHTML = m.html;
    if (atBottom && m.status === 'streaming') { window.scrollTo(0, document.body.scrollHeight); }
  });
  vscode.postMessage({ type: 'ready' });
</script>
</body>
</html>`;
  }

  dispose(): void {
    if (this.renderTimer !== undefined) {
      clearTimeout(this.renderTimer);
    }
    this.panel?.dispose();
  }
}

/** "file.py:3-7" for a panel title. */
export function rangeLabel(uri: vscode.Uri, range: vscode.Range): string {
  const name = path.basename(uri.path);
  const first = range.start.line + 1;
  const last = range.end.line + (range.end.character === 0 && range.end.line > range.start.line ? 0 : 1);
  return first === last ? `${name}:${first}` : `${name}:${first}-${last}`;
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
