import * as path from 'path';
import * as vscode from 'vscode';
import { LanguageClient } from 'vscode-languageclient/node';
import { errorMessage } from './errors';
import { ExplainPanel, rangeLabel } from './explainPanel';
import { ProgressNotifications } from './progress';
import { ACTION_COMMANDS, ActionArgs, ActionCommand, ActionResult, execute, StreamParams, TestsOutcome } from './protocol';
import { Recent } from './recent';
import { Run, Runs } from './runs';
import { describeUsage } from './usage';

/** How this extension presents one of the server's action commands. */
export interface ActionSpec {
  command: ActionCommand;
  title: string;
  /** Render the streamed answer in the panel. */
  show: boolean;
  instruction?: string;
  action?: string;
}

export interface CustomAction {
  id: string;
  title: string;
  prompt?: string;
  apply?: 'show' | 'replace' | 'testFile';
}

/** An action this extension started, under its own work-done token, until its request answers. */
interface ActionRun extends Run {
  readonly kind: 'action';
  /** The panel session its `lspilot/stream` text goes to (shown actions only). */
  session?: number;
}

/** The server's action commands, as this extension presents them. */
export const ACTIONS: Record<ActionCommand, ActionSpec> = {
  'lspilot.explain': { command: 'lspilot.explain', title: 'Explain', show: true },
  'lspilot.refactor': { command: 'lspilot.refactor', title: 'Refactor', show: false },
  'lspilot.writeTests': { command: 'lspilot.writeTests', title: 'Write tests', show: false },
  'lspilot.run': { command: 'lspilot.run', title: 'Action', show: false },
};

/** The custom actions of the `lspilot.actions` setting that have what a menu needs. */
export function customActions(): CustomAction[] {
  const actions = vscode.workspace.getConfiguration('lspilot').get<unknown[]>('actions') ?? [];
  return actions.filter(
    (a): a is CustomAction =>
      typeof a === 'object' && a !== null && typeof (a as CustomAction).id === 'string' && typeof (a as CustomAction).title === 'string',
  );
}

/**
 * The running actions and what shows them: each run of this extension has a work-done token of its
 * own, which pairs its `lspilot/stream` text (the panel), its `$/progress` (the notification with
 * Cancel) and its answer (the outcome, with tokens and cost). Streams of runs started elsewhere,
 * under tokens the server made, get a panel of their own when they explain.
 */
export class ActionTracker implements vscode.Disposable {
  /** Streams of runs started elsewhere (tokens the server made): their panel session, if any. */
  private readonly foreign = new Recent<string, number | undefined>(64);
  private readonly finished = new vscode.EventEmitter<ActionResult>();
  private testsChannel: vscode.OutputChannel | undefined;
  /** Fires when an action of this extension has answered. */
  readonly onDidEnd = this.finished.event;

  constructor(
    private readonly runs: Runs,
    private readonly panel: ExplainPanel,
    private readonly progress: ProgressNotifications,
    /** The log: each action's end (status and error type). */
    private readonly output?: vscode.OutputChannel,
  ) {}

  /**
   * `lspilot/stream` of no run of this extension (the shared record took its own runs' text, each
   * matched by its token alone): started elsewhere, under a token the server made.
   */
  onForeignStream(params: StreamParams): void {
    const key = String(params.token);
    if (!this.foreign.has(key)) {
      const session =
        params.command === 'lspilot.explain'
          ? this.panel.start(`Explanation: ${path.basename(vscode.Uri.parse(params.uri).path)}`, 'streaming')
          : undefined;
      this.foreign.set(key, session);
    }
    const session = this.foreign.get(key);
    if (session !== undefined) {
      this.panel.append(session, params.delta ?? '');
    }
    if (params.done) {
      if (session !== undefined) {
        this.panel.finish(session, 'done');
      }
      this.foreign.delete(key);
      this.runs.markEnded(key);
    }
  }

  /** Runs one of the server's commands with these arguments, presented as `spec` says. */
  execute(c: LanguageClient, spec: ActionSpec, args: ActionArgs, rawArguments?: unknown[]): Promise<ActionResult> {
    return this.track(c, spec, args, (token) => execute(c, spec.command, args, { workDoneToken: token, rawArguments }));
  }

  /**
   * `middleware.executeCommand`: light-bulb actions run through here, and get the same panel and
   * messages as this extension's commands. They are sent here, not by `next`, to give them this
   * extension's own work-done token.
   */
  executeCommand(c: LanguageClient | undefined, command: string, args: unknown[], next: (command: string, args: unknown[]) => unknown): unknown {
    const first = args[0];
    if (!isActionCommand(command) || typeof first !== 'object' || first === null || c === undefined) {
      return next(command, args);
    }
    const spec = ACTIONS[command];
    const argument = first as ActionArgs;
    const custom = command === 'lspilot.run' ? customActions().find((a) => a.id === argument.action) : undefined;
    return this.execute(
      c,
      { ...spec, title: custom?.title ?? spec.title, show: custom !== undefined ? custom.apply === 'show' : spec.show },
      argument,
      args,
    );
  }

  /**
   * Runs one action request under a work-done token of its own and presents it: the panel for shown
   * answers (fed by `lspilot/stream` for that token, finished with the result), the progress
   * notification (fed by `$/progress` for that token), and the outcome when it ends. The server
   * reports a failed action itself (window/showMessage); a refused request (bad arguments) is
   * reported here. Everything kept for the run is dropped when its request answers.
   */
  private async track(
    c: LanguageClient,
    spec: ActionSpec,
    args: ActionArgs,
    send: (token: string) => Promise<ActionResult | null>,
  ): Promise<ActionResult> {
    const uri = typeof args.uri === 'string' ? args.uri : '';
    const token = Runs.token('action');
    const run: ActionRun = {
      token,
      kind: 'action',
      onStream: (params) => {
        if (run.session !== undefined) {
          this.panel.append(run.session, params.delta ?? '');
        }
      },
      // vscode-languageclient passes `$/progress` for this token through middleware.handleWorkDoneProgress
      // first (which shows the notification: `progress.handle` takes begin and report there), then here
      // for what it lets through (the end). Handling it again here is harmless: a token is shown once.
      onProgress: (params) => this.progress.handle(token, params),
    };
    if (spec.show) {
      const what = spec.command === 'lspilot.explain' ? 'Explanation' : spec.title;
      run.session = this.panel.start(`${what}: ${describeTarget(uri, args.range)}`);
    }
    let result: ActionResult;
    let refused: string | undefined;
    try {
      result =
        (await this.runs.track(c, run, async () => {
          try {
            return await send(token);
          } finally {
            this.progress.close(token);
          }
        })) ?? { status: 'done' };
    } catch (error) {
      refused = errorMessage(error);
      result = { status: 'failed', error: { type: 'request', message: refused } };
    }
    this.output?.appendLine(`[lspilot] ${spec.title}: ${result.status}${result.error?.type ? ` (${result.error.type})` : ''}`);
    const detail = result.error?.message ?? undefined;
    if (run.session !== undefined) {
      this.panel.finish(run.session, result.status, result.text, result.status === 'failed' ? detail : undefined);
    }
    if (refused !== undefined) {
      void vscode.window.showErrorMessage(`lspilot: ${spec.title}: ${refused}`);
    }
    // A change declined in the preview is no failure, whatever status the server gives it.
    if (result.status === 'done' || result.status === 'cancelled' || result.error?.type === 'declined') {
      // The outcome goes to the status bar and a notification of its own, not into the progress
      // notification (it would sit there under a Cancel button).
      const outcome = run.endMessage ? `${spec.title}: ${run.endMessage}` : `${spec.title} ${result.status}`;
      vscode.window.setStatusBarMessage(`lspilot: ${outcome}`, 8000);
      const tests = result.tests ?? undefined;
      if (hasOutput(tests)) {
        void vscode.window.showInformationMessage(endNotification(spec.title, result, run.endMessage), SHOW_OUTPUT).then((choice) => {
          if (choice === SHOW_OUTPUT) {
            this.showTestOutput(tests);
          }
        });
      } else {
        void vscode.window.showInformationMessage(endNotification(spec.title, result, run.endMessage));
      }
    }
    this.finished.fire(result);
    return result;
  }

  /** The output channel "lspilot tests": the command, what it printed, and the counts. */
  private showTestOutput(tests: TestsOutcome): void {
    this.testsChannel ??= vscode.window.createOutputChannel(TESTS_CHANNEL);
    const channel = this.testsChannel;
    channel.clear();
    channel.appendLine(`$ ${tests.command ?? '(the test command)'}`);
    channel.appendLine((tests.output ?? '').replace(/\s+$/, ''));
    channel.appendLine('');
    channel.appendLine(describeTests(tests));
    channel.show(false);
  }

  dispose(): void {
    this.finished.dispose();
    this.testsChannel?.dispose();
  }
}

/** The output channel the last test run's output goes to. */
export const TESTS_CHANNEL = 'lspilot tests';
const SHOW_OUTPUT = 'Show output';

function hasOutput(tests: TestsOutcome | undefined): tests is TestsOutcome {
  return tests !== undefined && typeof tests.output === 'string' && tests.output.trim() !== '';
}

/** `2 passed, 1 failed, after 1 repair round` or the problem that kept any test from running. */
export function describeTests(tests: TestsOutcome): string {
  if (tests.ran === false) {
    return `No test ran: ${tests.problem ?? 'the run failed before any test'}.`;
  }
  const rounds = tests.rounds ?? 0;
  const repairs = rounds > 0 ? `, after ${rounds} repair round${rounds === 1 ? '' : 's'}` : '';
  return `${tests.passed ?? 0} passed, ${tests.failed ?? 0} failed${repairs}.`;
}

function isActionCommand(command: string): command is ActionCommand {
  return (ACTION_COMMANDS as readonly string[]).includes(command);
}

/**
 * `lspilot: Refactor done (812 tokens in, 240 out, $0.0003).` (cancelled: what it cost anyway; a
 * change the user rejected in the preview: "not applied: you declined it"; cancelled after edits
 * were applied: the server's end, "cancelled; the edits already applied stay (undo reverts them)").
 */
export function endNotification(title: string, result: ActionResult, serverEnd?: string): string {
  const usage = describeUsage(result.usage);
  const cancelled = serverEnd?.startsWith('Cancelled')
    ? serverEnd.replace(/^Cancelled/, 'cancelled').replace(/\.$/, '')
    : 'cancelled; nothing was changed';
  const outcome =
    result.error?.type === 'declined'
      ? 'not applied: you declined it'
      : result.status === 'done'
        ? 'done'
        : cancelled;
  return `lspilot: ${title} ${outcome}${usage !== undefined ? ` (${usage})` : ''}.`;
}

function describeTarget(uri: string, range: unknown): string {
  try {
    const r = range as { start: { line: number; character: number }; end: { line: number; character: number } };
    return rangeLabel(
      vscode.Uri.parse(uri),
      new vscode.Range(r.start.line, r.start.character, r.end.line, r.end.character),
    );
  } catch {
    return path.basename(uri);
  }
}
