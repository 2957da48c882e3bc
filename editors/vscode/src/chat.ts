import * as vscode from 'vscode';
import { LanguageClient, MessageActionItem, MessageType, ShowMessageRequestParams } from 'vscode-languageclient/node';
import { StepView } from './agentSteps';
import { ChatMode, ChatTurn, ChatView } from './chatView';
import { errorMessage } from './errors';
import { ChatArgs, ChatResult, ChatShown, execute, StreamParams, ToolCallParams } from './protocol';
import { Run as TrackedRun, Runs } from './runs';
import { ServerProcess } from './serverProcess';
import { describeUsage, formatCost } from './usage';

/** How the server's agent questions begin (docs/protocol.md, window/showMessageRequest). */
export const AGENT_QUESTION = "lspilot's agent wants to";

/** A question of the server's agent, asked in the view and as a notification until either answers. */
interface Pending {
  step: StepView;
  settle(choice: string | undefined): void;
}

/** What a message is about: a document, and its selection when there is one. */
export interface ChatContext {
  uri: vscode.Uri;
  range?: vscode.Range;
  /** `calc.py:4-7`, shown under the message. */
  label: string;
}

/** A turn this extension sent, under its own work-done token, until its request answers. */
interface Run extends TrackedRun {
  readonly kind: 'chat';
  /** The answer's turn (the view shows it while it is in `turns`). */
  turn: ChatTurn;
  /** The conversation it was sent in (the number of `newConversation`s before it). */
  generation: number;
  /** Cancels the request itself ($/cancelRequest), when the server did not know the token yet. */
  request: vscode.CancellationTokenSource;
  stopping: boolean;
  mode: ChatMode;
  /** Agent mode: its steps by their key, in order. */
  steps: Map<string, StepView>;
  /** Agent mode: the server's questions not answered yet. */
  pending: Set<Pending>;
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
  /**
   * False once an agent turn ran in this conversation: it adds an unknown number of answers (one per
   * model request) to the server's numbering, so later answers are applied as "the last answer".
   */
  private answersCounted = true;
  private questions = 0;
  private generation = 0;
  /** The turn of this conversation that streams, if any. */
  private current: Run | undefined;
  private readonly endedEmitter = new vscode.EventEmitter<ChatResult>();
  /** Fires when a turn has answered. */
  readonly onDidEnd = this.endedEmitter.event;

  constructor(
    private readonly server: ServerProcess,
    private readonly view: ChatView,
    /** Every turn of this extension in flight by its token (a stopped turn of an earlier conversation too). */
    private readonly runs: Runs,
  ) {
    this.view.show(this.turns);
  }

  /** The id of the conversation shown, once its first turn was answered. */
  get conversationId(): string | undefined {
    return this.conversation;
  }

  /** `lspilot/stream` of one of this extension's chat turns (the shared record matched its token). */
  private onStream(run: Run, params: StreamParams): void {
    const delta = params.delta ?? '';
    run.turn.text += delta;
    const parts = run.turn.parts;
    if (parts !== undefined && delta !== '') {
      const last = parts[parts.length - 1];
      if (last?.kind === 'text') {
        last.text += delta;
      } else {
        parts.push({ kind: 'text', text: delta });
      }
    }
    if (run.turn.status === 'waiting') {
      run.turn.status = 'streaming';
    }
    this.changed(run);
  }

  /** `lspilot/toolCall` of one of this extension's chat turns. */
  private onToolCall(run: Run, params: ToolCallParams): void {
    // The step of this call id that has not ended yet (ids are the model's: one may come again
    // in a later request of the turn), else a new one.
    let step = [...run.steps.values()].reverse().find((s) => s.id === params.id && s.status === 'running');
    if (step === undefined) {
      step = { key: `step-${run.steps.size + 1}`, id: params.id, name: params.name, arguments: params.arguments, status: params.status };
      run.steps.set(step.key, step);
      (run.turn.parts ??= []).push({ kind: 'step', step });
    }
    step.status = params.status;
    step.arguments = params.arguments;
    if (params.summary !== undefined) {
      step.summary = params.summary;
    }
    if (run.turn.status === 'waiting') {
      run.turn.status = 'streaming';
    }
    this.changed(run, true);
  }

  /**
   * window/showMessageRequest: a question of the agent (its message starts "lspilot's agent wants
   * to") during an agent turn of this view is shown on its step in the view, with the same buttons,
   * and as the usual notification; the first answer in either place answers the server. Undefined
   * for every other question (the caller shows it as VS Code always does).
   */
  ask(params: ShowMessageRequestParams, cancelled: vscode.CancellationToken): Promise<MessageActionItem | null> | undefined {
    const run = this.current;
    const actions = params.actions ?? [];
    if (run === undefined || run.mode !== 'agent' || !params.message.startsWith(AGENT_QUESTION) || actions.length === 0) {
      return undefined;
    }
    // The server asks about the step it has just announced (`running`, before it runs); the
    // question names no step, so it goes to the newest one still waiting.
    let step = [...run.steps.values()].reverse().find((s) => s.status === 'running' && s.approval === undefined);
    if (step === undefined) {
      step = { key: `step-${run.steps.size + 1}`, id: `question-${++this.questions}`, name: 'question', arguments: '', status: 'running' };
      run.steps.set(step.key, step);
      (run.turn.parts ??= []).push({ kind: 'step', step });
    }
    const asked = step;
    asked.approval = { message: params.message, actions: actions.map((a) => a.title) };
    this.changed(run, true);
    return new Promise((resolve) => {
      let done = false;
      let fromNotification = false;
      const pending: Pending = {
        step: asked,
        settle: (choice) => {
          if (done) {
            return;
          }
          done = true;
          if (!fromNotification) {
            // Answered in the view (or moot): VS Code cannot close one notification, so its toast
            // goes to the notification center, where its buttons no longer do anything.
            void vscode.commands.executeCommand('notifications.hideToasts');
          }
          run.pending.delete(pending);
          listening.dispose();
          if (asked.approval !== undefined) {
            asked.approval.answered = choice ?? 'no answer';
          }
          this.changed(run, true);
          resolve(choice !== undefined ? (actions.find((a) => a.title === choice) ?? { title: choice }) : null);
        },
      };
      run.pending.add(pending);
      const listening = cancelled.onCancellationRequested(() => pending.settle(undefined));
      const show =
        params.type === MessageType.Error
          ? vscode.window.showErrorMessage
          : params.type === MessageType.Info || params.type === MessageType.Log
            ? vscode.window.showInformationMessage
            : vscode.window.showWarningMessage;
      void show(params.message, ...actions.map((a) => a.title)).then((choice) => {
        if (choice !== undefined) {
          fromNotification = !done;
          pending.settle(choice); // closed without a choice: the view's buttons still answer
        }
      });
    });
  }

  /** A button of a step's question in the view. */
  answer(step: StepView, choice: string): void {
    for (const run of this.runs.list<Run>('chat')) {
      for (const pending of run.pending) {
        if (pending.step === step) {
          pending.settle(choice);
          return;
        }
      }
    }
  }

  /** Sends one turn of the conversation shown; refused while one streams. */
  async send(message: string, context?: ChatContext, mode: ChatMode = 'ask'): Promise<boolean> {
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
    const args: ChatArgs = { message };
    if (mode === 'agent') {
      args.mode = 'agent'; // ask is the default: an ask turn's arguments stay as they were
    }
    if (this.conversation !== undefined) {
      args.conversation = this.conversation;
    }
    if (context !== undefined) {
      args.uri = c.code2ProtocolConverter.asUri(context.uri);
      if (context.range !== undefined) {
        args.range = c.code2ProtocolConverter.asRange(context.range);
      }
    }
    this.forgetLastAnswer();
    const about = context !== undefined ? `with ${context.label}` : undefined;
    const note = mode === 'agent' ? ['agent', about].filter((n) => n !== undefined).join(' · ') : about;
    this.turns.push({ role: 'user', text: message, status: 'done', note, mode });
    this.view.changed(this.turns.length - 1, true);
    const turn: ChatTurn = { role: 'assistant', text: '', status: 'waiting', mode, parts: mode === 'agent' ? [] : undefined };
    this.turns.push(turn);
    this.view.changed(this.turns.length - 1, true);
    const run: Run = {
      token: Runs.token('chat'),
      kind: 'chat',
      onStream: (params) => this.onStream(run, params),
      onToolCall: (params) => this.onToolCall(run, params),
      turn,
      generation: this.generation,
      request: new vscode.CancellationTokenSource(),
      stopping: false,
      mode,
      steps: new Map(),
      pending: new Set(),
    };
    this.current = run;
    this.view.setBusy(true);
    void vscode.commands.executeCommand('setContext', 'lspilot.chatStreaming', true);
    const result = await this.runTurn(c, run, args);
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
    for (const pending of [...run.pending]) {
      pending.settle(undefined); // the turn is over: its question is moot
    }
  }

  /** An empty view for a new conversation (the shown one stays kept: Open conversation… shows it again). */
  newConversation(): void {
    this.leave();
    this.view.show(this.turns);
  }

  /** Shows a kept conversation again; later turns continue it. */
  async reopen(c: LanguageClient, id: string): Promise<void> {
    const shown = (await execute(c, 'lspilot.chatList', { conversation: id })) as ChatShown;
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
    this.answersCounted = true;
  }

  /**
   * Once the server's numbering of answers is unknown (an agent turn ran), the newest ask answer
   * is applied as "the last answer"; when another turn starts it no longer is, so it loses Apply.
   */
  private forgetLastAnswer(): void {
    this.turns.forEach((turn, index) => {
      if (turn.answer === LAST_ANSWER) {
        turn.answer = undefined;
        this.view.changed(index, true);
      }
    });
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
      const answer = await execute(c, 'lspilot.cancel', { token: run.token });
      if (!(answer?.cancelled ?? []).map(String).includes(run.token) && this.runs.has(run.token)) {
        run.request.cancel();
      }
    } catch {
      run.request.cancel();
    }
  }

  private runTurn(c: LanguageClient, run: Run, args: ChatArgs): Promise<ChatResult> {
    return this.runs.track(c, run, () => this.requestTurn(c, run, args));
  }

  private async requestTurn(c: LanguageClient, run: Run, args: ChatArgs): Promise<ChatResult> {
    try {
      const answer = await execute(c, 'lspilot.chat', args, { workDoneToken: run.token, cancel: run.request.token });
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
      for (const pending of [...run.pending]) {
        pending.settle(undefined);
      }
      run.request.dispose();
    }
  }

  private finish(run: Run, result: ChatResult): void {
    const mine = run.generation === this.generation;
    if (mine) {
      this.current = undefined;
      this.view.setBusy(false);
      void vscode.commands.executeCommand('setContext', 'lspilot.chatStreaming', false);
      const turn = run.turn;
      if (turn.parts !== undefined && typeof result.text === 'string' && result.text.length > turn.text.length) {
        // text the stream had not delivered (it is coalesced; nothing should be missing)
        turn.parts.push({ kind: 'text', text: result.text.slice(turn.text.length) });
      }
      if (typeof result.text === 'string' && result.text.length >= turn.text.length) {
        turn.text = result.text;
      }
      turn.status = result.status;
      const usage = describeUsage(result.usage, formatCost); // the one cost format (issue 28)
      const notes: string[] = [];
      if (run.mode === 'agent') {
        for (const step of run.steps.values()) {
          if (step.status === 'running') {
            step.status = 'stopped'; // cancelled while it ran: the server sends no end for it
          }
        }
        const steps = run.steps.size;
        notes.push(`${steps} step${steps === 1 ? '' : 's'}`);
      }
      if (result.status === 'done') {
        if (this.conversation === undefined && typeof result.conversation === 'string') {
          this.conversation = result.conversation;
          this.title = this.turns[0]?.text.split('\n')[0];
          this.view.setTitle(this.title);
        }
        if (run.mode === 'agent') {
          this.answersCounted = false; // its answers are not offered Apply: the agent edits files itself
        } else {
          turn.answer = this.answersCounted ? this.answers++ : LAST_ANSWER;
        }
        if (result.stopReason === 'max_steps') {
          notes.push('stopped at lspilot.agentMaxSteps');
        } else if (result.stopReason === 'max_cost') {
          notes.push('stopped at its cost limit (lspilot.agentMaxCost or lspilot.maxSessionCost)');
        }
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
    this.endedEmitter.fire(result);
  }

  private changed(run: Run, now = false): void {
    if (run.generation === this.generation) {
      const index = this.turns.indexOf(run.turn);
      if (index >= 0) {
        this.view.changed(index, now);
      }
    }
  }

  dispose(): void {
    for (const run of this.runs.list<Run>('chat')) {
      run.request.cancel();
    }
    this.endedEmitter.dispose();
  }
}

/** ChatTurn.answer of an ask answer applied without a `turn` (the server's last answer). */
export const LAST_ANSWER = -1;
