import { ChildProcess, spawn } from 'child_process';
import * as crypto from 'crypto';
import * as os from 'os';
import * as path from 'path';
import * as vscode from 'vscode';
import {
  CloseAction,
  ConfigurationItem,
  DidChangeConfigurationNotification,
  ErrorAction,
  ExecuteCommandRequest,
  LanguageClient,
  LanguageClientOptions,
  ResponseError,
  State,
  StreamInfo,
  WorkDoneProgress,
  WorkDoneProgressCancelNotification,
} from 'vscode-languageclient/node';
import { ExplainPanel, rangeLabel } from './explainPanel';
import { ProgressNotifications } from './progress';
import { Recent } from './recent';
import { checkRunnable, describe, resolveServerCommand, ServerCommand, serverEnvironment, START_FIX } from './serverCommand';
import { effectiveBaseUrl, explicitSettings, hostOf, loadServerKeys, Settings } from './settings';

const SECRET_KEY = 'lspilot.apiKey';
/** globalState: the host (`host[:port]` of the base URL) the key in secret storage was stored for. */
const KEY_HOST = 'lspilot.apiKeyHost';
/** globalState: `{ host: true | false }`, the user's answers to "Send your lspilot API key to HOST?". */
const KEY_ANSWERS = 'lspilot.apiKeyHosts';

/** `lspilot/stream`: one piece of an action's answer. */
interface StreamParams {
  token: string | number;
  command: string;
  uri: string;
  delta: string;
  done: boolean;
}

/** What `workspace/executeCommand` answers for an lspilot action. */
interface ActionResult {
  status: 'done' | 'cancelled' | 'failed';
  text?: string;
  usage?: unknown;
  error?: { type?: string; message?: string } | null;
}

interface CustomAction {
  id: string;
  title: string;
  prompt?: string;
  apply?: 'show' | 'replace' | 'testFile';
}

/** An action this extension started, under its own work-done token, until its request answers. */
interface Run {
  /** The panel session its `lspilot/stream` text goes to (shown actions only). */
  session?: number;
  /** The message of its progress `end`: the outcome, with tokens and seconds. */
  endMessage?: string;
}

interface ActionSpec {
  command: string;
  title: string;
  /** Render the streamed answer in the panel. */
  show: boolean;
  instruction?: string;
  action?: string;
}

let context: vscode.ExtensionContext;
let output: vscode.OutputChannel;
let panel: ExplainPanel;
let progress: ProgressNotifications;
let client: LanguageClient | undefined;
let starting: Promise<LanguageClient | undefined> | undefined;
let serverProcess: ChildProcess | undefined;
let stderrTail: string[] = [];
let secretApiKey: string | undefined;
let initialized = false;
let restarts: number[] = [];

/** Runs of this extension by their work-done token; an entry lives exactly as long as its request. */
const runs = new Map<string, Run>();
/** Tokens of runs that have ended: a late `lspilot/stream` for one is dropped. */
const ended = new Recent<string, true>(256);
/** Streams of runs started elsewhere (tokens the server made): their panel session, if any. */
const foreign = new Recent<string, number | undefined>(64);
/** Questions "Send your lspilot API key to HOST?" being asked, by host. */
const asking = new Map<string, Promise<void>>();

export async function activate(ctx: vscode.ExtensionContext): Promise<void> {
  context = ctx;
  loadServerKeys(ctx.extension.packageJSON);
  output = vscode.window.createOutputChannel('lspilot');
  panel = new ExplainPanel();
  progress = new ProgressNotifications((token) => {
    void client?.sendNotification(WorkDoneProgressCancelNotification.type, { token });
  });
  ctx.subscriptions.push(output, panel, progress);

  secretApiKey = await ctx.secrets.get(SECRET_KEY);
  ctx.subscriptions.push(
    ctx.secrets.onDidChange(async (event) => {
      if (event.key === SECRET_KEY) {
        secretApiKey = await ctx.secrets.get(SECRET_KEY);
        await pushSettings();
      }
    }),
  );

  const register = (id: string, fn: () => unknown): void => {
    ctx.subscriptions.push(vscode.commands.registerCommand(id, fn));
  };
  register('lspilot.explainSelection', () => runAction({ command: 'lspilot.explain', title: 'Explain', show: true }));
  register('lspilot.refactorSelection', () => runAction({ command: 'lspilot.refactor', title: 'Refactor', show: false }));
  register('lspilot.writeTestsSelection', () =>
    runAction({ command: 'lspilot.writeTests', title: 'Write tests', show: false }),
  );
  register('lspilot.refactorWithInstruction', refactorWithInstruction);
  register('lspilot.runCustomAction', runCustomAction);
  register('lspilot.showActions', showActions);
  register('lspilot.cancelAll', cancelAll);
  register('lspilot.setApiKey', setApiKey);
  register('lspilot.clearApiKey', async () => {
    await ctx.secrets.delete(SECRET_KEY);
    await ctx.globalState.update(KEY_HOST, undefined);
    await ctx.globalState.update(KEY_ANSWERS, undefined);
    void vscode.window.showInformationMessage('lspilot: the API key was removed from secret storage.');
  });
  register('lspilot.restartServer', restartServer);
  register('lspilot.showOutput', () => output.show(true));

  ctx.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (
        event.affectsConfiguration('lspilot.serverCommand') ||
        event.affectsConfiguration('lspilot.pythonPath') ||
        event.affectsConfiguration('http.proxy')
      ) {
        await restartServer();
      }
    }),
    // Trusting the workspace lets its restricted settings (baseUrl, ...) apply.
    vscode.workspace.onDidGrantWorkspaceTrust(() => pushSettings()),
  );

  void ensureClient();
}

export async function deactivate(): Promise<void> {
  await stopClient();
}

// ---------------------------------------------------------------------------------------------
// The server

function ensureClient(): Promise<LanguageClient | undefined> {
  if (client !== undefined && client.state === State.Running) {
    return Promise.resolve(client);
  }
  if (starting === undefined) {
    starting = startClient().finally(() => {
      starting = undefined;
    });
  }
  return starting;
}

async function startClient(): Promise<LanguageClient | undefined> {
  await stopClient();
  const cmd = resolveServerCommand(vscode.workspace.getConfiguration('lspilot'));
  const problem = checkRunnable(cmd);
  if (problem !== undefined) {
    showStartError(cmd, problem);
    return undefined;
  }
  output.appendLine(`[lspilot] starting the server: ${describe(cmd)} (from ${cmd.source})`);
  initialized = false;
  restarts = [];
  const c = new LanguageClient('lspilot', 'lspilot', () => spawnServer(cmd), clientOptions());
  c.onNotification('lspilot/stream', onStream);
  c.onDidChangeState((event) => {
    if (event.newState === State.Stopped) {
      progress.clear();
    }
  });
  client = c;
  try {
    await c.start();
    initialized = true;
    return c;
  } catch (error) {
    const reason = stderrTail.length > 0 ? stderrTail.slice(-3).join(' | ') : errorMessage(error);
    showStartError(cmd, reason);
    client = undefined;
    try {
      await c.dispose(2000);
    } catch {
      // already gone
    }
    killServer();
    return undefined;
  }
}

async function stopClient(): Promise<void> {
  const c = client;
  client = undefined;
  if (c !== undefined) {
    try {
      await c.dispose(2000);
    } catch {
      // the server may already be gone
    }
  }
  killServer();
  progress?.clear();
}

function killServer(): void {
  const child = serverProcess;
  serverProcess = undefined;
  if (child !== undefined && child.exitCode === null && child.signalCode === null) {
    child.kill();
  }
}

async function restartServer(): Promise<void> {
  await stopClient();
  const c = await ensureClient();
  if (c !== undefined) {
    vscode.window.setStatusBarMessage('lspilot: server restarted', 3000);
  }
}

/**
 * Starts the server. Its stderr is kept as a short tail for the messages about a server that could
 * not start or stopped, and is not copied into the output channel: the server logs there through
 * `window/logMessage` (its stderr is silent while an editor takes its log), and vscode-languageclient
 * would otherwise print both, every line twice. So the client gets the pipes (StreamInfo), not the
 * process, and this extension stops the process itself.
 */
async function spawnServer(cmd: ServerCommand): Promise<StreamInfo> {
  stderrTail = [];
  const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? os.homedir();
  const env = serverEnvironment(process.env, vscode.workspace.getConfiguration('http').get<string>('proxy'));
  const child = spawn(cmd.command, cmd.args, { cwd, env, stdio: 'pipe', windowsHide: true });
  child.stderr.on('data', (data: Buffer) => {
    for (const line of data.toString('utf8').split(/\r?\n/)) {
      if (line.trim() !== '') {
        stderrTail.push(line.trim());
      }
    }
    stderrTail = stderrTail.slice(-20);
  });
  child.on('exit', (code, signal) => {
    const how = signal ?? `code ${code}`;
    if (code !== 0 && signal === null && stderrTail.length > 0) {
      // It died on its own: what it said last (a traceback) went to stderr only.
      output.appendLine(`[lspilot] server exited (${how}); its last lines on stderr:`);
      for (const line of stderrTail.slice(-10)) {
        output.appendLine(`[lspilot]   ${line}`);
      }
    } else {
      output.appendLine(`[lspilot] server exited (${how})`);
    }
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', (error) => reject(error));
  });
  const previous = serverProcess;
  serverProcess = child;
  if (previous !== undefined && previous !== child && previous.exitCode === null && previous.signalCode === null) {
    previous.kill(); // the client restarted the server after a crash: the old one must not linger
  }
  return { reader: child.stdout, writer: child.stdin, detached: false };
}

function showStartError(cmd: ServerCommand, reason: string): void {
  const message =
    `lspilot: the language server could not start: ${reason} (command: ${describe(cmd)}, from ${cmd.source}). ` + START_FIX;
  output.appendLine(`[lspilot] ${message}`);
  void vscode.window.showErrorMessage(message, 'Open Settings', 'Show Output').then((choice) => {
    if (choice === 'Open Settings') {
      void vscode.commands.executeCommand('workbench.action.openSettings', 'lspilot.serverCommand lspilot.pythonPath');
    } else if (choice === 'Show Output') {
      output.show(true);
    }
  });
}

function clientOptions(): LanguageClientOptions {
  // Never the key from secret storage: an initialization option stays in force for the server's
  // whole life, even after lspilot.baseUrl moves to another host. It goes with each
  // workspace/configuration answer instead, for the host that answer names.
  const initializationOptions: Settings = { explainShow: 'none', ...explicitSettings(undefined) };
  return {
    documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
    outputChannel: output,
    initializationOptions,
    synchronize: { configurationSection: 'lspilot' },
    middleware: {
      workspace: {
        configuration: async (params, token, next) => {
          const ours = (item: ConfigurationItem): boolean =>
            item.section === 'lspilot' || (item.section ?? '').startsWith('lspilot.');
          let base: unknown[] = [];
          if (params.items.some((item) => !ours(item))) {
            const answer = await next(params, token);
            if (answer instanceof ResponseError) {
              return answer;
            }
            base = answer;
          }
          return params.items.map((item, index) => {
            if (!ours(item)) {
              return base[index];
            }
            const settings = serverSettings(item.scopeUri);
            if (item.section === 'lspilot') {
              return settings;
            }
            return settings[(item.section ?? '').slice('lspilot.'.length)] ?? null;
          });
        },
        didChangeConfiguration: async () => {
          await pushSettings();
        },
      },
      // Light-bulb actions run through here: give them the same panel and messages as ours.
      // They are sent here, not by `next`, to give them this extension's own work-done token.
      executeCommand: (command, args: unknown[], next) => {
        const spec = ACTIONS[command];
        const first = args[0];
        const c = client;
        if (spec === undefined || typeof first !== 'object' || first === null || c === undefined) {
          const passThrough: unknown = next(command, args);
          return passThrough;
        }
        const argument = first as Record<string, unknown>;
        const custom = command === 'lspilot.run' ? customActions().find((a) => a.id === argument.action) : undefined;
        return trackAction(
          c,
          { ...spec, title: custom?.title ?? spec.title, show: custom !== undefined ? custom.apply === 'show' : spec.show },
          argument,
          async (token) =>
            (await c.sendRequest(ExecuteCommandRequest.type, { command, arguments: args, workDoneToken: token })) as ActionResult | null,
        );
      },
      handleWorkDoneProgress: (token, params, next) => {
        if (!progress.handle(token, params)) {
          next(token, params);
        }
      },
    },
    errorHandler: {
      error: (_error, _message, count) => ({ action: (count ?? 0) <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown }),
      closed: () => {
        progress.clear();
        if (!initialized) {
          return { action: CloseAction.DoNotRestart, handled: true };
        }
        const now = Date.now();
        restarts = restarts.filter((t) => now - t < 3 * 60_000);
        restarts.push(now);
        if (restarts.length > 3) {
          const cmd = resolveServerCommand(vscode.workspace.getConfiguration('lspilot'));
          showStartError(cmd, `it stopped ${restarts.length} times in 3 minutes (last: ${stderrTail.slice(-1)[0] ?? 'no message'})`);
          return { action: CloseAction.DoNotRestart, handled: true };
        }
        output.appendLine('[lspilot] the server stopped; restarting it');
        return { action: CloseAction.Restart, handled: true };
      },
    },
  };
}

/** The settings as the server should see them: only what the user set, plus this extension's needs. */
function serverSettings(scopeUri?: string | null): Settings {
  const scope = scopeUri ? vscode.Uri.parse(scopeUri) : undefined;
  const settings = explicitSettings(scope);
  if (settings.explainShow === undefined) {
    settings.explainShow = 'none'; // this extension renders explanations itself
  }
  if (settings.apiKey === undefined) {
    const key = storedKeyFor(settings);
    if (key !== undefined) {
      settings.apiKey = key;
    }
  }
  return settings;
}

// ---------------------------------------------------------------------------------------------
// The key in secret storage belongs to the host it was stored for

/**
 * The key from secret storage when these settings send requests to the host it was stored for, or
 * to a host the user allowed; otherwise undefined, and the user is asked (once per host) whether it
 * may go there. A workspace's lspilot.baseUrl can thus not take the key elsewhere unasked.
 */
function storedKeyFor(settings: Settings): string | undefined {
  if (!secretApiKey) {
    return undefined;
  }
  const host = hostOf(effectiveBaseUrl(settings));
  if (host === undefined) {
    return undefined; // `local` (no key needed) or not a URL (the server refuses it)
  }
  const home = storedKeyHost();
  if (host === home) {
    return secretApiKey;
  }
  const answer = context.globalState.get<Record<string, boolean>>(KEY_ANSWERS, {})[host];
  if (answer === true) {
    return secretApiKey;
  }
  if (answer === undefined) {
    void askToSendKey(host, home);
  }
  return undefined;
}

/** The host the stored key is bound to. A key stored before keys were bound gets the user's own endpoint. */
function storedKeyHost(): string | undefined {
  let host = context.globalState.get<string>(KEY_HOST);
  if (host === undefined) {
    const info = vscode.workspace.getConfiguration('lspilot').inspect('baseUrl');
    const userBaseUrl = info?.globalValue;
    host = hostOf(effectiveBaseUrl(typeof userBaseUrl === 'string' ? { baseUrl: userBaseUrl } : {}));
    if (host !== undefined) {
      void context.globalState.update(KEY_HOST, host);
    }
  }
  return host;
}

/**
 * Asks "Send your lspilot API key to HOST?" (modal: Allow / Cancel) and remembers the answer for the
 * host. The configuration answer in flight goes without the key; after Allow the server is told the
 * settings changed and reads them again, key included.
 */
function askToSendKey(host: string, home: string | undefined): Promise<void> {
  let question = asking.get(host);
  if (question === undefined) {
    question = (async () => {
      const choice = await vscode.window.showWarningMessage(
        `Send your lspilot API key to ${host}?`,
        {
          modal: true,
          detail:
            `The key in VS Code's secret storage was stored for ${home ?? 'another endpoint'}; lspilot.baseUrl ` +
            `(or LSPILOT_BASE_URL) now sends requests to ${host}. The answer is remembered for ${host} ` +
            '(lspilot: Set API key starts over).',
        },
        'Allow',
      );
      const answers = { ...context.globalState.get<Record<string, boolean>>(KEY_ANSWERS, {}) };
      answers[host] = choice === 'Allow';
      await context.globalState.update(KEY_ANSWERS, answers);
      output.appendLine(`[lspilot] API key for ${host}: ${answers[host] ? 'allowed' : 'not sent'}`);
      if (answers[host]) {
        await pushSettings();
      }
    })().finally(() => asking.delete(host));
    asking.set(host, question);
  }
  return question;
}

async function pushSettings(): Promise<void> {
  const c = client;
  if (c === undefined || c.state !== State.Running) {
    return;
  }
  await c.sendNotification(DidChangeConfigurationNotification.type, { settings: { lspilot: serverSettings() } });
}

// ---------------------------------------------------------------------------------------------
// Streams

/**
 * `lspilot/stream`, matched by its token alone: each run of this extension has its own work-done
 * token, so two runs on one file can never take each other's text.
 */
function onStream(params: StreamParams): void {
  const key = String(params.token);
  const run = runs.get(key);
  if (run !== undefined) {
    if (run.session !== undefined) {
      panel.append(run.session, params.delta ?? '');
    }
    return;
  }
  if (ended.has(key)) {
    return; // a run of ours that has answered already
  }
  // Started by something else than this extension's commands, under a token the server made.
  if (!foreign.has(key)) {
    const session =
      params.command === 'lspilot.explain'
        ? panel.start(`Explanation: ${path.basename(vscode.Uri.parse(params.uri).path)}`, 'streaming')
        : undefined;
    foreign.set(key, session);
  }
  const session = foreign.get(key);
  if (session !== undefined) {
    panel.append(session, params.delta ?? '');
  }
  if (params.done) {
    if (session !== undefined) {
      panel.finish(session, 'done');
    }
    foreign.delete(key);
    ended.set(key, true);
  }
}

// ---------------------------------------------------------------------------------------------
// Commands

/** The selection, or the cursor's line when nothing is selected. */
function targetRange(editor: vscode.TextEditor): vscode.Range {
  const selection = editor.selection;
  if (!selection.isEmpty) {
    return new vscode.Range(selection.start, selection.end);
  }
  return editor.document.lineAt(selection.active.line).range;
}

/** The server's action commands, as this extension presents them. */
const ACTIONS: Record<string, ActionSpec> = {
  'lspilot.explain': { command: 'lspilot.explain', title: 'Explain', show: true },
  'lspilot.refactor': { command: 'lspilot.refactor', title: 'Refactor', show: false },
  'lspilot.writeTests': { command: 'lspilot.writeTests', title: 'Write tests', show: false },
  'lspilot.run': { command: 'lspilot.run', title: 'Action', show: false },
};

async function runAction(spec: ActionSpec): Promise<void> {
  const editor = vscode.window.activeTextEditor;
  if (editor === undefined) {
    void vscode.window.showWarningMessage('lspilot: open a file and select some code first.');
    return;
  }
  const c = await ensureClient();
  if (c === undefined) {
    return;
  }
  const range = targetRange(editor);
  if (range.isEmpty) {
    void vscode.window.showWarningMessage(`lspilot: select the code to ${spec.title.toLowerCase()} first.`);
    return;
  }
  const args: Record<string, unknown> = {
    uri: c.code2ProtocolConverter.asUri(editor.document.uri),
    range: c.code2ProtocolConverter.asRange(range),
  };
  if (spec.instruction !== undefined) {
    args.instruction = spec.instruction;
  }
  if (spec.action !== undefined) {
    args.action = spec.action;
  }
  await trackAction(c, spec, args, async (token) =>
    (await c.sendRequest(ExecuteCommandRequest.type, {
      command: spec.command,
      arguments: [args],
      workDoneToken: token,
    })) as ActionResult | null,
  );
}

/**
 * Runs one action request under a work-done token of its own and presents it: the panel for shown
 * answers (fed by `lspilot/stream` for that token, finished with the result), the progress
 * notification (fed by `$/progress` for that token), and the outcome in the status bar when it
 * ends. The server reports a failed action itself (window/showMessage); a refused request (bad
 * arguments) is reported here. Everything kept for the run is dropped when its request answers.
 */
async function trackAction(
  c: LanguageClient,
  spec: ActionSpec,
  args: Record<string, unknown>,
  send: (token: string) => Promise<ActionResult | null>,
): Promise<ActionResult> {
  const uri = typeof args.uri === 'string' ? args.uri : '';
  const token = `lspilot-vscode-${crypto.randomUUID()}`;
  const run: Run = {};
  if (spec.show) {
    const what = spec.command === 'lspilot.explain' ? 'Explanation' : spec.title;
    run.session = panel.start(`${what}: ${describeTarget(uri, args.range)}`);
  }
  runs.set(token, run);
  // vscode-languageclient passes `$/progress` for this token through middleware.handleWorkDoneProgress
  // first (which shows the notification: `progress.handle` takes begin and report there), then here
  // for what it lets through (the end). Handling it again here is harmless: a token is shown once.
  const listening = c.onProgress(WorkDoneProgress.type, token, (params) => {
    if (params.kind === 'end') {
      run.endMessage = params.message;
    }
    progress.handle(token, params);
  });
  let result: ActionResult;
  let refused: string | undefined;
  try {
    result = (await send(token)) ?? { status: 'done' };
  } catch (error) {
    refused = errorMessage(error);
    result = { status: 'failed', error: { type: 'request', message: refused } };
  } finally {
    runs.delete(token);
    ended.set(token, true);
    listening.dispose();
    progress.close(token);
  }
  const detail = result.error?.message ?? undefined;
  if (run.session !== undefined) {
    panel.finish(run.session, result.status, result.text, result.status === 'failed' ? detail : undefined);
  }
  if (refused !== undefined) {
    void vscode.window.showErrorMessage(`lspilot: ${spec.title}: ${refused}`);
  }
  if (result.status === 'done' || result.status === 'cancelled') {
    // The outcome goes here, not into the progress notification (it would sit under a Cancel button).
    const outcome = run.endMessage ? `${spec.title}: ${run.endMessage}` : `${spec.title} ${result.status}`;
    vscode.window.setStatusBarMessage(`lspilot: ${outcome}`, 8000);
  }
  return result;
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

async function refactorWithInstruction(): Promise<void> {
  if (vscode.window.activeTextEditor === undefined) {
    void vscode.window.showWarningMessage('lspilot: open a file and select some code first.');
    return;
  }
  const instruction = await vscode.window.showInputBox({
    title: 'lspilot: Refactor with instruction',
    prompt: 'How should the selected code change?',
    placeHolder: 'e.g. use a dataclass; add type hints; make it iterative',
    ignoreFocusOut: true,
  });
  if (instruction === undefined || instruction.trim() === '') {
    return;
  }
  await runAction({ command: 'lspilot.refactor', title: 'Refactor', show: false, instruction: instruction.trim() });
}

function customActions(): CustomAction[] {
  const actions = vscode.workspace.getConfiguration('lspilot').get<unknown[]>('actions') ?? [];
  return actions.filter(
    (a): a is CustomAction =>
      typeof a === 'object' && a !== null && typeof (a as CustomAction).id === 'string' && typeof (a as CustomAction).title === 'string',
  );
}

function runCustom(action: CustomAction): Promise<void> {
  return runAction({ command: 'lspilot.run', title: action.title, show: action.apply === 'show', action: action.id });
}

async function runCustomAction(): Promise<void> {
  const actions = customActions();
  if (actions.length === 0) {
    const choice = await vscode.window.showInformationMessage(
      'lspilot: no custom actions yet. Add them to the `lspilot.actions` setting.',
      'Open Settings',
    );
    if (choice !== undefined) {
      await vscode.commands.executeCommand('workbench.action.openSettings', 'lspilot.actions');
    }
    return;
  }
  const picked = await vscode.window.showQuickPick(
    actions.map((a) => ({ label: a.title, description: a.apply, detail: a.prompt, action: a })),
    { title: 'lspilot: Run custom action', placeHolder: 'Action to run on the selection' },
  );
  if (picked !== undefined) {
    await runCustom(picked.action);
  }
}

async function showActions(): Promise<void> {
  type Item = vscode.QuickPickItem & { run?: () => unknown };
  const items: Item[] = [
    { label: '$(comment-discussion) Explain', run: () => vscode.commands.executeCommand('lspilot.explainSelection') },
    { label: '$(wand) Refactor', run: () => vscode.commands.executeCommand('lspilot.refactorSelection') },
    { label: '$(edit) Refactor with instruction…', run: () => vscode.commands.executeCommand('lspilot.refactorWithInstruction') },
    { label: '$(beaker) Write tests', run: () => vscode.commands.executeCommand('lspilot.writeTestsSelection') },
  ];
  const custom = customActions();
  if (custom.length > 0) {
    items.push({ label: 'Custom actions', kind: vscode.QuickPickItemKind.Separator });
    for (const action of custom) {
      items.push({ label: action.title, description: action.apply, run: () => runCustom(action) });
    }
  }
  items.push({ label: '', kind: vscode.QuickPickItemKind.Separator });
  items.push({ label: '$(stop-circle) Cancel running actions', run: cancelAll });
  const picked = await vscode.window.showQuickPick(items, { title: 'lspilot', placeHolder: 'Action for the selection' });
  await picked?.run?.();
}

async function cancelAll(): Promise<void> {
  const c = client;
  if (c === undefined || c.state !== State.Running) {
    return;
  }
  try {
    await c.sendRequest(ExecuteCommandRequest.type, { command: 'lspilot.cancel', arguments: [{}] });
  } catch (error) {
    output.appendLine(`[lspilot] cancel failed: ${errorMessage(error)}`);
  }
}

async function setApiKey(): Promise<void> {
  const baseUrl = effectiveBaseUrl(explicitSettings(vscode.window.activeTextEditor?.document.uri));
  const key = await vscode.window.showInputBox({
    title: 'lspilot: Set API key',
    prompt:
      `API key for ${hostOf(baseUrl) ?? baseUrl} (lspilot.baseUrl). It is kept in VS Code's secret storage, not in settings, ` +
      'and sent only to that host unless you allow another.',
    password: true,
    ignoreFocusOut: true,
  });
  if (key === undefined) {
    return;
  }
  // The key is bound to the host it is stored for; answers given for other hosts start over.
  const host = hostOf(effectiveBaseUrl(explicitSettings(vscode.window.activeTextEditor?.document.uri)));
  await context.globalState.update(KEY_ANSWERS, undefined);
  if (key.trim() === '') {
    await context.globalState.update(KEY_HOST, undefined);
    await context.secrets.delete(SECRET_KEY);
  } else {
    await context.globalState.update(KEY_HOST, host);
    await context.secrets.store(SECRET_KEY, key.trim());
  }
  void vscode.window.showInformationMessage(
    `lspilot: API key saved in secret storage${host !== undefined && key.trim() !== '' ? `, for ${host}` : ''}.`,
  );
}

function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}
