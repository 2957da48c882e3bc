import * as path from 'path';
import * as vscode from 'vscode';
import { createMarkdown, MARKDOWN_STYLE, webviewPage } from './markdown';

export type SessionStatus = 'waiting' | 'streaming' | 'done' | 'cancelled' | 'failed';

interface Session {
  id: number;
  title: string;
  text: string;
  status: SessionStatus;
  detail?: string;
}

/**
 * The panel's view type. The panel is revived once the extension activates as usual (the source
 * file beside it, or the chat view), which is also when VS Code asks its serializer. (The server
 * that used to start with the default command after a reload in code-server was not this panel's
 * doing: lspilot.serverCommand was machine-scoped, which a remote window drops from the user's
 * settings, at startup only sometimes; see settings.ts, MACHINE_KEYS.)
 */
export const EXPLAIN_PANEL = 'lspilot.explanation';

/** What the panel's webview keeps across a window reload (`vscode.setState`): its last explanation. */
interface SavedExplanation {
  title?: unknown;
  text?: unknown;
  status?: unknown;
  detail?: unknown;
}

/**
 * A markdown panel beside the editor that renders an explanation while it streams in.
 * It shows one session at a time: the most recent explanation.
 *
 * After a window reload VS Code brings the panel back (its serializer, registered here): it shows
 * the explanation it had, from the webview's state, rather than leaving an empty editor group where
 * it was; one that had nothing to show is closed.
 */
export class ExplainPanel implements vscode.Disposable {
  private panel: vscode.WebviewPanel | undefined;
  private session: Session | undefined;
  private nextId = 1;
  private renderTimer: NodeJS.Timeout | undefined;
  private readonly md = createMarkdown();
  private readonly serializer = vscode.window.registerWebviewPanelSerializer(EXPLAIN_PANEL, {
    deserializeWebviewPanel: (panel, state) => Promise.resolve(this.restore(panel, state as SavedExplanation | undefined)),
  });

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
    this.adopt(
      vscode.window.createWebviewPanel(
        EXPLAIN_PANEL,
        'lspilot: Explanation',
        { viewColumn: vscode.ViewColumn.Beside, preserveFocus: true },
        { enableScripts: true, retainContextWhenHidden: true, localResourceRoots: [] },
      ),
    );
  }

  private adopt(panel: vscode.WebviewPanel): void {
    this.panel = panel;
    panel.webview.options = { enableScripts: true, localResourceRoots: [] };
    panel.webview.html = this.shell();
    panel.onDidDispose(() => {
      if (this.panel === panel) {
        this.panel = undefined;
      }
    });
    panel.webview.onDidReceiveMessage((message: { type?: string }) => {
      if (message?.type === 'ready' && this.panel === panel) {
        this.renderNow();
      }
    });
  }

  /** The panel VS Code kept across a window reload: shown again with its explanation, or closed. */
  private restore(panel: vscode.WebviewPanel, state: SavedExplanation | undefined): void {
    const text = typeof state?.text === 'string' ? state.text : '';
    if (this.panel !== undefined || text.trim() === '') {
      panel.dispose(); // nothing to show (or a newer explanation has the panel): no empty group left
      return;
    }
    const status = typeof state?.status === 'string' ? (state.status as SessionStatus) : 'done';
    const ended = status === 'done' || status === 'cancelled' || status === 'failed';
    const detail = typeof state?.detail === 'string' ? state.detail : undefined;
    this.session = {
      id: this.nextId++,
      title: typeof state?.title === 'string' ? state.title : 'lspilot: Explanation',
      text,
      status: ended ? status : 'cancelled',
      detail: ended ? detail : 'the window was reloaded while it streamed',
    };
    this.adopt(panel);
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
      // kept by the webview for a window reload (see restore)
      saved: { title, text, status, detail },
    });
  }

  private shell(): string {
    return webviewPage({
      title: 'lspilot: Explanation',
      bodyAttributes: 'data-status="waiting"',
      style: `
  body { font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); color: var(--vscode-foreground); padding: 0 16px 16px; line-height: 1.5; }
  header { position: sticky; top: 0; background: var(--vscode-editor-background); padding: 8px 0; border-bottom: 1px solid var(--vscode-panel-border, transparent); }
  #title { font-weight: 600; }
  #status { color: var(--vscode-descriptionForeground); font-size: 0.9em; }
  body[data-status="failed"] #status { color: var(--vscode-errorForeground); }
${MARKDOWN_STYLE}`,
      body: '<header><div id="title"></div><div id="status"></div></header>\n<main id="content"></main>',
      script: `
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
    vscode.setState(m.saved);
    if (atBottom && m.status === 'streaming') { window.scrollTo(0, document.body.scrollHeight); }
  });
  vscode.postMessage({ type: 'ready' });`,
    });
  }

  dispose(): void {
    if (this.renderTimer !== undefined) {
      clearTimeout(this.renderTimer);
    }
    this.serializer.dispose();
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
