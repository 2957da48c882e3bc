import * as crypto from 'crypto';
import * as vscode from 'vscode';
import { ExecuteCommandRequest, LanguageClient, ProgressToken, WorkDoneProgress } from 'vscode-languageclient/node';
import { ChatTurn, ChatView } from './chatView';
import { errorMessage } from './errors';
import type { ChatResult, ChatShown, StreamParams } from './protocol';
import { Recent } from './recent';
import { ServerProcess } from './serverProcess';
import { describeUsage } from './usage';

/** What a message is about: a document, and its selection when there is one. */
export interface ChatContext {
  uri: vscode.Uri;
  range?: vscode.Range;
  /** `calc.py:4-7`, shown under the message. */
  label: string;
}

/** A turn this extension sent, under its own work-done token, until its request answers. */
interface Run {
  token: string;
  /** The answer's turn (the view shows it while it is in `turns`). */
  turn: ChatTurn;
  /** The conversation it was sent in (the number of `newConversation`s before it). */
  generation: number;
  /** Cancels the request itself ($/cancelRequest), when the server did not know the token yet. */
  request: vscode.CancellationTokenSource;
  stopping: boolean;
  /** The message of its progress `end` (the outcome, with tokens and seconds). */
  endMessage?: string;
}

/**
 * The conversation in the chat view and its turns: sends `lspilot.chat` with the conversation's
 * id, shows the answer as its `lspilot/stream` text arrives (paired by this extension's own
 * work-done token), stops it, starts a new conversation or shows a kept one again.
 *
 * A turn's work-done progress is not shown as a notification (the view has Stop, and a toast for
 * each answer would be noise); its outcome goes to the status bar as the actions' does, its tokens
 * and cost under the answer.
 */
export class Chat implements vscode.Disposable {
  private conversation: string | undefined;
  private title: string | undefined;
  private turns: ChatTurn[] = [];
  /** Answers the server kept in this conversation: the `answer` number of the next one. */
  private answers = 0;
  private generation = 0;
  /** The turn of this conversation that streams, if any. */
  private current: Run | undefined;
  /** Every turn of this extension in flight by its token (a stopped turn of an earlier conversation too). */
  private readonly runs = new Map<string, Run>();
  private readonly endedTokens = new Recent<string, true>(256);
  private readonly changedEmitter = new vscode.EventEmitter<void>();
  private readonly endedEmitter = new vscode.EventEmitter<ChatResult>();
  /** Fires when a turn starts or ends. */
  readonly onDidChange = this.changedEmitter.event;
  /** Fires when a turn has answered. */
  readonly onDidEnd = this.endedEmitter.event;

  constructor(
    private readonly server: ServerProcess,
    private readonly view: ChatView,
  ) {
    this.view.show(this.turns);
  }

  /** How many turns of this extension are running. */
  get running(): number {
    return this.runs.size;
  }

  /** The id of the conversation shown, once its first turn was answered. */
  get conversationId(): string | undefined {
    return this.conversation;
  }

  /** Whether `token` is one of this extension's chat turns: its progress is the view's, not a notification. */
  owns(token: ProgressToken): boolean {
    return this.runs.has(String(token));
  }

  /** `lspilot/stream`: true when it belonged to one of this extension's chat turns. */
  onStream(params: StreamParams): boolean {
    const key = String(params.token);
    const run = this.runs.get(key);
    if (run === undefined) {
      return this.endedTokens.has(key); // a late piece of a turn that has answered
    }
    run.turn.text += params.delta ?? '';
    if (run.turn.status === 'waiting') {
      run.turn.status = 'streaming';
    }
    this.changed(run);
    return true;
  }

  /** Sends one turn of the conversation shown; refused while one streams. */
  async send(message: string, context?: ChatContext): Promise<boolean> {
    if (this.current !== undefined) {
      void vscode.window.showWarningMessage('lspilot: an answer is still streaming; wait for it or press Stop.');
      this.view.restoreInput(message);
      return false;
    }
    const c = await this.server.ensure();
    if (c === undefined) {
      this.view.restoreInput(message); // the server could not start; it said why
      return false;
    }
    if (this.current !== undefined) {
      this.view.restoreInput(message);
      return false; // another turn started while the server was starting
    }
    const args: Record<string, unknown> = { message };
    if (this.conversation !== undefined) {
      args.conversation = this.conversation;
    }
    if (context !== undefined) {
      args.uri = c.code2ProtocolConverter.asUri(context.uri);
      if (context.range !== undefined) {
        args.range = c.code2ProtocolConverter.asRange(context.range);
      }
    }
    this.turns.push({ role: 'user', text: message, status: 'done', note: context !== undefined ? `with ${context.label}` : undefined });
    this.view.changed(this.turns.length - 1, true);
    const turn: ChatTurn = { role: 'assistant', text: '', status: 'waiting' };
    this.turns.push(turn);
    this.view.changed(this.turns.length - 1, true);
    const run: Run = {
      token: `lspilot-vscode-chat-${crypto.randomUUID()}`,
      turn,
      generation: this.generation,
      request: new vscode.CancellationTokenSource(),
      stopping: false,
    };
    this.current = run;
    this.runs.set(run.token, run);
    this.view.setBusy(true);
    void vscode.commands.executeCommand('setContext', 'lspilot.chatStreaming', true);
    this.changedEmitter.fire();
    const result = await this.execute(c, run, args);
    this.finish(run, result);
    return result.status === 'done';
  }

  /** Stops the streaming turn: the server ends it as cancelled (what it cost is still counted). */
  async stop(): Promise<void> {
    const run = this.current;
    if (run === undefined || run.stopping) {
      return;
    }
    run.stopping = true;
    run.turn.note = 'stopping…';
    this.view.changed(this.turns.indexOf(run.turn), true);
    await this.cancel(run);
  }

  /** An empty view for a new conversation (the shown one stays kept: Open conversation… shows it again). */
  newConversation(): void {
    this.leave();
    this.view.show(this.turns);
  }

  /** Shows a kept conversation again; later turns continue it. */
  async reopen(c: LanguageClient, id: string): Promise<void> {
    const shown = (await c.sendRequest(ExecuteCommandRequest.type, {
      command: 'lspilot.chatList',
      arguments: [{ conversation: id }],
    })) as ChatShown;
    this.leave();
    this.conversation = shown.conversation;
    this.title = shown.title;
    for (const turn of shown.turns) {
      if (turn.role === 'assistant') {
        this.turns.push({ role: 'assistant', text: turn.text, status: 'done', answer: this.answers++ });
      } else {
        this.turns.push({ role: 'user', text: turn.text, status: 'done' });
      }
    }
    this.view.show(this.turns, this.title);
  }

  /** The server forgot conversation `id` (lspilot.chatReset): a view showing it starts anew. */
  forgotten(id: string): void {
    if (this.conversation === id) {
      this.newConversation();
    }
  }

  private leave(): void {
    const run = this.current;
    if (run !== undefined && !run.stopping) {
      run.stopping = true;
      void this.cancel(run);
    }
    this.current = undefined;
    this.view.setBusy(false);
    void vscode.commands.executeCommand('setContext', 'lspilot.chatStreaming', false);
    this.generation++;
    this.conversation = undefined;
    this.title = undefined;
    this.turns = [];
    this.answers = 0;
  }

  /**
   * Cancels the turn as the actions are cancelled: `lspilot.cancel` for its token. A turn the server
   * has not started yet is not among the ones it cancels: then its request is cancelled instead.
   */
  private async cancel(run: Run): Promise<void> {
    const c = this.server.client;
    if (c === undefined) {
      run.request.cancel();
      return;
    }
    try {
      const answer = (await c.sendRequest(ExecuteCommandRequest.type, {
        command: 'lspilot.cancel',
        arguments: [{ token: run.token }],
      })) as { cancelled?: unknown[] } | null;
      if (!(answer?.cancelled ?? []).map(String).includes(run.token) && this.runs.has(run.token)) {
        run.request.cancel();
      }
    } catch {
      run.request.cancel();
    }
  }

  private async execute(c: LanguageClient, run: Run, args: Record<string, unknown>): Promise<ChatResult> {
    const listening = c.onProgress(WorkDoneProgress.type, run.token, (params) => {
      if (params.kind === 'end') {
        run.endMessage = params.message;
      }
    });
    try {
      const answer = (await c.sendRequest(
        ExecuteCommandRequest.type,
        { command: 'lspilot.chat', arguments: [args], workDoneToken: run.token },
        run.request.token,
      )) as ChatResult | null;
      return answer ?? { status: run.stopping ? 'cancelled' : 'failed', error: run.stopping ? null : { message: 'no answer' } };
    } catch (error) {
      if (run.stopping) {
        return { status: 'cancelled' };
      }
      const refused = errorMessage(error);
      // The server reports a turn that failed itself (window/showMessage); a refused request
      // (an unknown conversation, bad arguments) is reported here, as the actions do.
      void vscode.window.showErrorMessage(`lspilot: Chat: ${refused}`);
      return { status: 'failed', error: { type: 'request', message: refused } };
    } finally {
      listening.dispose();
      run.request.dispose();
      this.runs.delete(run.token);
      this.endedTokens.set(run.token, true);
    }
  }

  private finish(run: Run, result: ChatResult): void {
    const mine = run.generation === this.generation;
    if (mine) {
      this.current = undefined;
      this.view.setBusy(false);
      void vscode.commands.executeCommand('setContext', 'lspilot.chatStreaming', false);
      const turn = run.turn;
      if (typeof result.text === 'string' && result.text.length >= turn.text.length) {
        turn.text = result.text;
      }
      turn.status = result.status;
      const usage = describeUsage(result.usage);
      const notes: string[] = [];
      if (result.status === 'done') {
        if (this.conversation === undefined && typeof result.conversation === 'string') {
          this.conversation = result.conversation;
          this.title = this.turns[0]?.text.split('\n')[0];
          this.view.setTitle(this.title);
        }
        turn.answer = this.answers++;
      } else if (result.status === 'cancelled') {
        notes.push('stopped; not kept in the conversation');
      } else {
        notes.push(`failed: ${result.error?.message ?? 'no reason given'}`);
      }
      if (usage !== undefined) {
        notes.push(usage);
      }
      const dropped = result.droppedTurns ?? 0;
      if (dropped > 0) {
        notes.push(`${dropped} earlier turn(s) left out of the model's history to fit lspilot.contextBudgetChars`);
      }
      turn.note = notes.join(' · ');
      this.view.changed(this.turns.indexOf(turn), true);
    }
    if (result.status === 'done' || result.status === 'cancelled') {
      const outcome = run.endMessage ? `Chat: ${run.endMessage}` : `Chat ${result.status}`;
      vscode.window.setStatusBarMessage(`lspilot: ${outcome}`, 8000);
    }
    this.changedEmitter.fire();
    this.endedEmitter.fire(result);
  }

  private changed(run: Run): void {
    if (run.generation === this.generation) {
      const index = this.turns.indexOf(run.turn);
      if (index >= 0) {
        this.view.changed(index);
      }
    }
  }

  dispose(): void {
    for (const run of this.runs.values()) {
      run.request.cancel();
    }
    this.changedEmitter.dispose();
    this.endedEmitter.dispose();
  }
}
