import * as vscode from 'vscode';
import { renderStep, StepView } from './agentSteps';
import { renderAnswer, withBlockButtons } from './chatRender';
import { createMarkdown, MARKDOWN_STYLE, webviewPage } from './markdown';

export type TurnStatus = 'waiting' | 'streaming' | 'done' | 'cancelled' | 'failed';

/** Ask (a chat answer) or Agent (the model works in the workspace through tools). */
export type ChatMode = 'ask' | 'agent';

/** A piece of an agent's answer, in the order it came: its text, or a step (a tool call). */
export type AnswerPart = { kind: 'text'; text: string } | { kind: 'step'; step: StepView };

/** One turn as the view shows it: the user's message, or an answer. */
export interface ChatTurn {
  role: 'user' | 'assistant';
  /** The mode the turn was sent in (ask when absent). */
  mode?: ChatMode;
  text: string;
  status: TurnStatus;
  /** Under the turn: what the message was about, an answer's tokens and cost, its error. */
  note?: string;
  /** An answer the server kept: its 0-based number among the conversation's answers (chatApply's `turn`). */
  answer?: number;
  /** An agent turn's answer: its text and steps in order (its `text` is the text alone). */
  parts?: AnswerPart[];
}

/** What the user did with a step: answered its question, opened its file, asked for its diff. */
export type StepAction = { kind: 'answer'; step: StepView; choice: string } | { kind: 'open' | 'diff'; step: StepView };

/**
 * What the user asked for on an answer's code block: `turn` and `fence` say which block of the view
 * (for `blockResult`), `code` is its code as rendered.
 */
export type BlockAction = { turn: number; fence: number; code: string } & (
  | { kind: 'apply' | 'insert'; answer: number; block: number }
  | { kind: 'copy' }
);

/** How a block's button shows what its action did: `label` beside its icon for a while, `detail` as its tooltip. */
export interface BlockResult {
  ok: boolean;
  label: string;
  detail: string;
}

interface Rendered {
  html: string;
  fences: string[];
}

/** The view's id, as package.json contributes it (VS Code adds the command `lspilot.chatView.focus`). */
export const CHAT_VIEW = 'lspilot.chatView';

/**
 * The chat's webview: the turns rendered (answers as Markdown with nothing remote, code blocks
 * highlighted, with a header of their language and the icon buttons Apply to selection / Insert at
 * cursor / Copy; a REPL transcript only Copy), the input box, Send and Stop. It only shows what
 * chat.ts tells it and reports what the user did; it asks the server nothing.
 *
 * It lives in a view container of its own in the activity bar rather than in the panel: a
 * conversation reads best as a tall column beside the code it is about, and the panel is where the
 * terminal and the problems are, which the user wants to see while applying its code.
 */
export class ChatView implements vscode.WebviewViewProvider, vscode.Disposable {
  private view: vscode.WebviewView | undefined;
  private ready = false;
  private focusWhenReady = false;
  private turns: readonly ChatTurn[] = [];
  private rendered: Rendered[] = [];
  private busy = false;
  private context: string | undefined;
  private title: string | undefined;
  private dirty = new Set<number>();
  private timer: NodeJS.Timeout | undefined;
  private readonly md = withBlockButtons(createMarkdown());
  private readonly sent = new vscode.EventEmitter<{ text: string; withContext: boolean; mode: ChatMode }>();
  private readonly stepped = new vscode.EventEmitter<StepAction>();
  private readonly stopped = new vscode.EventEmitter<void>();
  private readonly acted = new vscode.EventEmitter<BlockAction>();
  /** The user sent a message (Enter or Send). */
  readonly onDidSend = this.sent.event;
  /** The user pressed Stop (or Escape in the input box). */
  readonly onDidStop = this.stopped.event;
  /** The user pressed a button on a code block. */
  readonly onDidAct = this.acted.event;
  /** The user pressed a step's button or link. */
  readonly onDidStep = this.stepped.event;

  resolveWebviewView(view: vscode.WebviewView): void {
    this.view = view;
    this.ready = false;
    view.webview.options = { enableScripts: true, localResourceRoots: [] };
    view.webview.html = this.page();
    view.description = this.title;
    view.onDidDispose(() => {
      if (this.view === view) {
        this.view = undefined;
        this.ready = false;
      }
    });
    view.webview.onDidReceiveMessage((message: unknown) => this.received(message));
  }

  /**
   * Shows these turns anew (a new or reopened conversation); `title` beside the view's name. The view
   * keeps the array: `changed(i)` shows `turns[i]` again, or for the first time once it is pushed.
   */
  show(turns: readonly ChatTurn[], title?: string): void {
    this.turns = turns;
    this.title = title;
    this.rendered = turns.map((turn) => this.render(turn));
    this.dirty.clear();
    if (this.view !== undefined) {
      this.view.description = title;
    }
    this.postAll();
  }

  /** Turn `index` of the turns last shown changed, or was added: shown soon (streaming) or now. */
  changed(index: number, now = false): void {
    this.dirty.add(index);
    if (now) {
      this.flush();
    } else if (this.timer === undefined) {
      this.timer = setTimeout(() => this.flush(), 40);
    }
  }

  /** The conversation's title, beside the view's name. */
  setTitle(title: string | undefined): void {
    this.title = title;
    if (this.view !== undefined) {
      this.view.description = title;
    }
  }

  /** A turn is streaming: Stop instead of Send. */
  setBusy(busy: boolean): void {
    this.busy = busy;
    this.post({ type: 'busy', busy });
  }

  /** What a message sent from the view is about (`calc.py:4-7`), or undefined when no file is open. */
  setContext(label: string | undefined): void {
    this.context = label;
    this.post({ type: 'context', label: label ?? null });
  }

  /** Shows on the block's button what its action did ("Applied ✓", "Not applied"). */
  blockResult(action: BlockAction, result: BlockResult): void {
    this.post({ type: 'blockResult', index: action.turn, fence: action.fence, act: action.kind, ...result });
  }

  /** Puts text back into the input box (a message that could not be sent). */
  restoreInput(text: string): void {
    this.post({ type: 'input', text });
  }

  /** Opens the view (resolving it first if needed) and puts the cursor into its input box. */
  async reveal(): Promise<void> {
    await vscode.commands.executeCommand(`${CHAT_VIEW}.focus`);
    if (this.ready) {
      this.post({ type: 'focus' });
    } else {
      this.focusWhenReady = true; // the page is still loading
    }
  }

  private flush(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    for (const index of [...this.dirty].sort((a, b) => a - b)) {
      const turn = this.turns[index];
      if (turn === undefined) {
        continue;
      }
      this.rendered[index] = this.render(turn);
      this.post({ type: 'turn', index, turn: this.payload(index) });
    }
    this.dirty.clear();
  }

  private render(turn: ChatTurn): Rendered {
    if (turn.role === 'user') {
      return { html: `<p class="message">${this.md.utils.escapeHtml(turn.text)}</p>`, fences: [] };
    }
    const ended = turn.status === 'done' || turn.status === 'cancelled' || turn.status === 'failed';
    if (turn.parts === undefined) {
      return renderAnswer(this.md, turn.text, { apply: turn.answer !== undefined, copy: ended });
    }
    // An agent's answer: its text pieces (Copy on their code; the agent edits files itself, so no
    // Apply) with its steps between them. Fence numbers run across the pieces (Copy's data-fence).
    const html: string[] = [];
    const fences: string[] = [];
    for (const part of turn.parts) {
      if (part.kind === 'step') {
        html.push(renderStep(part.step, (text) => this.md.utils.escapeHtml(text)));
        continue;
      }
      const piece = renderAnswer(this.md, part.text, { apply: false, copy: ended });
      const offset = fences.length;
      fences.push(...piece.fences);
      html.push(piece.html.replace(/data-fence="(\d+)"/g, (_, n: string) => `data-fence="${Number(n) + offset}"`));
    }
    return { html: html.join(''), fences };
  }

  private payload(index: number): Record<string, unknown> {
    const turn = this.turns[index];
    return {
      role: turn.role,
      status: turn.status,
      mode: turn.parts !== undefined || turn.mode === 'agent' ? 'agent' : 'ask',
      note: turn.note ?? (waitingForAnswer(turn) ? 'waiting for your answer (here or in the notification)…' : statusNote(turn)),
      html: this.rendered[index]?.html ?? '',
    };
  }

  private postAll(): void {
    this.post({
      type: 'reset',
      turns: this.turns.map((_, index) => this.payload(index)),
      busy: this.busy,
      context: this.context ?? null,
    });
  }

  private post(message: Record<string, unknown>): void {
    if (this.view !== undefined && this.ready) {
      void this.view.webview.postMessage(message);
    }
  }

  private received(raw: unknown): void {
    if (typeof raw !== 'object' || raw === null) {
      return;
    }
    const message = raw as {
      type?: string;
      text?: unknown;
      withContext?: unknown;
      mode?: unknown;
      act?: unknown;
      turn?: unknown;
      block?: unknown;
      fence?: unknown;
      step?: unknown;
      choice?: unknown;
    };
    switch (message.type) {
      case 'ready':
        this.ready = true;
        this.postAll();
        if (this.focusWhenReady) {
          this.focusWhenReady = false;
          this.post({ type: 'focus' });
        }
        return;
      case 'send':
        if (typeof message.text === 'string' && message.text.trim() !== '') {
          this.sent.fire({ text: message.text, withContext: message.withContext === true, mode: message.mode === 'agent' ? 'agent' : 'ask' });
        }
        return;
      case 'stop':
        this.stopped.fire();
        return;
      case 'step': {
        const turn = typeof message.turn === 'number' ? this.turns[message.turn] : undefined;
        const found = turn?.parts?.find((part) => part.kind === 'step' && part.step.key === message.step);
        if (found === undefined || found.kind !== 'step') {
          return;
        }
        if (message.act === 'answer' && typeof message.choice === 'string') {
          this.stepped.fire({ kind: 'answer', step: found.step, choice: message.choice });
        } else if (message.act === 'open' || message.act === 'diff') {
          this.stepped.fire({ kind: message.act, step: found.step });
        }
        return;
      }
      case 'act': {
        const turn = typeof message.turn === 'number' ? this.turns[message.turn] : undefined;
        if (turn === undefined) {
          return;
        }
        const index = message.turn as number;
        const fence = typeof message.fence === 'number' ? message.fence : -1;
        const code = this.rendered[index]?.fences[fence];
        if (code === undefined) {
          return;
        }
        if (message.act === 'copy') {
          this.acted.fire({ kind: 'copy', turn: index, fence, code });
        } else if ((message.act === 'apply' || message.act === 'insert') && typeof message.block === 'number' && turn.answer !== undefined) {
          this.acted.fire({ kind: message.act, answer: turn.answer, block: message.block, turn: index, fence, code });
        }
        return;
      }
    }
  }

  private page(): string {
    return webviewPage({
      title: 'lspilot: Chat',
      bodyAttributes: 'id="lspilot-chat" data-busy="false"',
      style: CHAT_STYLE,
      body: `<main id="turns"><p id="empty">Ask about your code. The selection (or the file) of the editor goes with the message; <code>#file:path</code> adds another file.</p></main>
<footer>
  <div id="mode" role="radiogroup" aria-label="Mode"><button id="mode-ask" role="radio" aria-checked="true" title="Ask: an answer about the code; nothing changes">Ask</button><button id="mode-agent" role="radio" aria-checked="false" title="Agent: the model reads the workspace, edits files and runs commands, asking you first">Agent</button></div>
  <label id="context-row"><input type="checkbox" id="with-context" checked> <span id="context-label">no file open</span></label>
  <textarea id="input" rows="3" aria-label="Message to lspilot" placeholder="Ask lspilot (Enter sends, Shift+Enter: new line)"></textarea>
  <div id="buttons"><button id="send" title="Send (Enter)">Send</button><button id="stop" title="Stop the answer (Escape)" hidden>Stop</button></div>
</footer>`,
      script: CHAT_SCRIPT,
    });
  }

  dispose(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
    }
    this.sent.dispose();
    this.stopped.dispose();
    this.stepped.dispose();
    this.acted.dispose();
  }
}

function waitingForAnswer(turn: ChatTurn): boolean {
  return (turn.parts ?? []).some((part) => part.kind === 'step' && part.step.approval !== undefined && part.step.approval.answered === undefined);
}

function statusNote(turn: ChatTurn): string {
  switch (turn.status) {
    case 'waiting':
      return 'waiting for the model…';
    case 'streaming':
      return turn.parts !== undefined ? 'working…' : 'streaming…';
    case 'cancelled':
      return 'stopped';
    case 'failed':
      return 'failed';
    case 'done':
      return '';
  }
}

const CHAT_STYLE = `
  html, body { height: 100%; }
  body { margin: 0; padding: 0; display: flex; flex-direction: column; font-family: var(--vscode-font-family); font-size: var(--vscode-font-size); color: var(--vscode-foreground); line-height: 1.5; }
  #turns { flex: 1; overflow-y: auto; padding: 0 12px 8px; }
  #empty { color: var(--vscode-descriptionForeground); }
  .turn { padding: 6px 0; border-bottom: 1px solid var(--vscode-panel-border, transparent); }
  .turn .who { font-weight: 600; font-size: 0.9em; }
  .turn.user .message { white-space: pre-wrap; margin: 4px 0; }
  .turn .note { color: var(--vscode-descriptionForeground); font-size: 0.85em; }
  .turn[data-status="failed"] .note { color: var(--vscode-errorForeground); }
  .code-block { margin: 8px 0; border: 1px solid var(--vscode-widget-border, var(--vscode-panel-border, transparent)); border-radius: 3px; background: var(--vscode-textCodeBlock-background); }
  .code-block pre { margin: 0; border-radius: 0 0 3px 3px; }
  .block-header { display: flex; align-items: center; justify-content: space-between; gap: 4px; min-height: 22px; padding: 0 2px 0 8px; font-size: 0.85em; color: var(--vscode-descriptionForeground); border-bottom: 1px solid var(--vscode-widget-border, var(--vscode-panel-border, transparent)); }
  .block-lang { font-family: var(--vscode-editor-font-family); }
  .block-tools { display: flex; align-items: center; gap: 1px; }
  button { font-family: inherit; font-size: 0.9em; color: var(--vscode-button-foreground); background: var(--vscode-button-background); border: none; padding: 2px 8px; border-radius: 2px; cursor: pointer; }
  button:hover { background: var(--vscode-button-hoverBackground); }
  button.block-action { display: inline-flex; align-items: center; gap: 3px; color: var(--vscode-icon-foreground, var(--vscode-foreground)); background: transparent; padding: 2px 3px; border-radius: 3px; font-size: 1em; }
  button.block-action:hover { background: var(--vscode-toolbar-hoverBackground, var(--vscode-button-secondaryHoverBackground)); }
  button.block-action:focus-visible { outline: 1px solid var(--vscode-focusBorder); outline-offset: -1px; }
  button.block-action svg { width: 16px; height: 16px; fill: none; stroke: currentColor; stroke-width: 1.2; stroke-linecap: round; stroke-linejoin: round; }
  button.block-action[data-state="ok"] { color: var(--vscode-testing-iconPassed, var(--vscode-charts-green, var(--vscode-foreground))); }
  button.block-action[data-state="failed"] { color: var(--vscode-errorForeground); }
  footer { border-top: 1px solid var(--vscode-panel-border, transparent); padding: 8px 12px; display: flex; flex-direction: column; gap: 4px; }
  #context-row { color: var(--vscode-descriptionForeground); font-size: 0.85em; }
  #input { resize: vertical; font-family: inherit; font-size: inherit; color: var(--vscode-input-foreground); background: var(--vscode-input-background); border: 1px solid var(--vscode-input-border, transparent); padding: 4px; }
  #input:focus { outline: 1px solid var(--vscode-focusBorder); }
  #buttons { display: flex; justify-content: flex-end; gap: 4px; }
  pre code { background: none; padding: 0; }
  #mode { display: flex; gap: 0; align-self: flex-start; border: 1px solid var(--vscode-button-secondaryBackground, var(--vscode-panel-border)); border-radius: 2px; }
  #mode button { color: var(--vscode-foreground); background: transparent; border-radius: 0; padding: 1px 10px; }
  #mode button[aria-checked="true"] { color: var(--vscode-button-foreground); background: var(--vscode-button-background); }
  .step { margin: 6px 0; padding: 4px 8px; border-left: 2px solid var(--vscode-textLink-foreground); background: var(--vscode-textCodeBlock-background, transparent); font-size: 0.9em; }
  .step[data-status="failed"] { border-left-color: var(--vscode-errorForeground); }
  .step[data-status="refused"], .step[data-status="stopped"] { border-left-color: var(--vscode-descriptionForeground); }
  .step-name { font-family: var(--vscode-editor-font-family); font-weight: 600; }
  .step-args { font-family: var(--vscode-editor-font-family); }
  .step-status { color: var(--vscode-descriptionForeground); }
  .step[data-status="failed"] .step-status { color: var(--vscode-errorForeground); }
  .step-summary { color: var(--vscode-descriptionForeground); }
  .step-summary::before { content: "· "; }
  .step-link { color: var(--vscode-textLink-foreground); }
  .approval { margin-top: 4px; }
  .approval .question { white-space: pre-wrap; margin: 4px 0; max-height: 16em; overflow: auto; }
  .approval-actions { display: flex; gap: 4px; flex-wrap: wrap; }
  .approval-answer { color: var(--vscode-descriptionForeground); margin-right: 6px; }
  button.secondary { color: var(--vscode-button-secondaryForeground); background: var(--vscode-button-secondaryBackground); }
  button.secondary:hover { background: var(--vscode-button-secondaryHoverBackground); }
  ${MARKDOWN_STYLE}`;

// The page's script: shows what the extension posts, reports keys and clicks. Every piece of HTML it
// sets comes from the extension (markdown-it without raw HTML, or escaped text).
const CHAT_SCRIPT = `
  const vscode = acquireVsCodeApi();
  const turns = document.getElementById('turns');
  const input = document.getElementById('input');
  const withContext = document.getElementById('with-context');
  const contextLabel = document.getElementById('context-label');
  const send = document.getElementById('send');
  const stop = document.getElementById('stop');
  const empty = document.getElementById('empty');
  const modeAsk = document.getElementById('mode-ask');
  const modeAgent = document.getElementById('mode-agent');
  const saved = vscode.getState() || {};
  let mode = saved.mode === 'agent' ? 'agent' : 'ask';
  if (saved.withContext === false) { withContext.checked = false; }
  if (typeof saved.draft === 'string') { input.value = saved.draft; }
  const save = () => vscode.setState({ withContext: withContext.checked, draft: input.value, mode });
  function setMode(next) {
    mode = next;
    document.body.dataset.mode = mode;
    modeAsk.setAttribute('aria-checked', String(mode === 'ask'));
    modeAgent.setAttribute('aria-checked', String(mode === 'agent'));
    input.placeholder = mode === 'agent'
      ? 'Tell the agent what to do (it asks before it edits or runs anything)'
      : 'Ask lspilot (Enter sends, Shift+Enter: new line)';
    save();
  }
  setMode(mode);
  modeAsk.addEventListener('click', () => setMode('ask'));
  modeAgent.addEventListener('click', () => setMode('agent'));

  function atBottom() { return turns.scrollTop + turns.clientHeight >= turns.scrollHeight - 24; }
  function turnElement(index, turn) {
    const section = document.createElement('section');
    section.className = 'turn ' + turn.role;
    section.dataset.index = String(index);
    section.dataset.status = turn.status;
    section.dataset.mode = turn.mode;
    const who = document.createElement('div');
    who.className = 'who';
    who.textContent = turn.role === 'user' ? 'You' : 'lspilot';
    const body = document.createElement('div');
    body.className = 'body';
    body.innerHTML = turn.html;
    const note = document.createElement('div');
    note.className = 'note';
    note.textContent = turn.note || '';
    section.append(who, body, note);
    return section;
  }
  function setBusy(busy) {
    document.body.dataset.busy = String(busy);
    send.hidden = busy;
    stop.hidden = !busy;
  }
  function submit() {
    const text = input.value;
    if (text.trim() === '' || document.body.dataset.busy === 'true') { return; }
    vscode.postMessage({ type: 'send', text, withContext: withContext.checked && !withContext.disabled, mode });
    input.value = '';
    save();
  }

  window.addEventListener('message', (event) => {
    const m = event.data;
    if (!m) { return; }
    if (m.type === 'reset') {
      turns.replaceChildren(...(m.turns.length > 0 ? m.turns.map((turn, index) => turnElement(index, turn)) : [empty]));
      setBusy(m.busy);
      setContext(m.context);
      turns.scrollTop = turns.scrollHeight;
    } else if (m.type === 'turn') {
      const follow = atBottom();
      const element = turnElement(m.index, m.turn);
      const old = turns.querySelector('.turn[data-index="' + m.index + '"]');
      empty.remove();
      if (old) { old.replaceWith(element); } else { turns.append(element); }
      if (follow) { turns.scrollTop = turns.scrollHeight; }
    } else if (m.type === 'busy') {
      setBusy(m.busy);
    } else if (m.type === 'context') {
      setContext(m.label);
    } else if (m.type === 'input') {
      if (input.value.trim() === '') { input.value = m.text; save(); }
    } else if (m.type === 'focus') {
      input.focus();
    } else if (m.type === 'blockResult') {
      showBlockResult(m);
    }
  });
  // What a block's action did, on its button for a few seconds ("Applied ✓", "Not applied").
  function showBlockResult(m) {
    const selector = '.turn[data-index="' + m.index + '"] button[data-act="' + m.act + '"][data-fence="' + m.fence + '"]';
    const button = turns.querySelector(selector);
    if (!button) { return; }
    if (button.dataset.title === undefined) { button.dataset.title = button.title; }
    button.querySelector('.block-state')?.remove();
    const label = document.createElement('span');
    label.className = 'block-state';
    label.textContent = m.label;
    button.append(label);
    button.dataset.state = m.ok ? 'ok' : 'failed';
    button.title = m.detail;
    clearTimeout(button.resultTimer);
    button.resultTimer = setTimeout(() => {
      label.remove();
      delete button.dataset.state;
      button.title = button.dataset.title;
    }, m.ok ? 6000 : 10000);
  }
  function setContext(label) {
    withContext.disabled = label === null;
    contextLabel.textContent = label === null ? 'no file open' : 'with ' + label;
  }

  input.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    } else if (event.key === 'Escape' && document.body.dataset.busy === 'true') {
      event.preventDefault();
      vscode.postMessage({ type: 'stop' });
    }
  });
  input.addEventListener('input', save);
  withContext.addEventListener('change', save);
  send.addEventListener('click', submit);
  stop.addEventListener('click', () => vscode.postMessage({ type: 'stop' }));
  turns.addEventListener('click', (event) => {
    const stepControl = event.target.closest('[data-step-act]');
    if (stepControl) {
      event.preventDefault();
      const stepElement = stepControl.closest('.step');
      const turn = stepControl.closest('.turn');
      if (stepElement && turn) {
        vscode.postMessage({
          type: 'step',
          act: stepControl.dataset.stepAct,
          turn: Number(turn.dataset.index),
          step: stepElement.dataset.step,
          choice: stepControl.dataset.choice,
        });
      }
      return;
    }
    const button = event.target.closest('button[data-act]');
    const section = button && button.closest('.turn');
    if (!section) { return; }
    vscode.postMessage({
      type: 'act',
      act: button.dataset.act,
      turn: Number(section.dataset.index),
      block: button.dataset.block === undefined ? undefined : Number(button.dataset.block),
      fence: button.dataset.fence === undefined ? undefined : Number(button.dataset.fence),
    });
  });
  vscode.postMessage({ type: 'ready' });`;
