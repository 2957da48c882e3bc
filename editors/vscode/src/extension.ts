import { ChildProcess, spawn } from 'child_process';
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
  WorkDoneProgressCancelNotification,
} from 'vscode-languageclient/node';
import { ExplainPanel, rangeLabel } from './explainPanel';
import { ProgressNotifications } from './progress';
import { checkRunnable, describe, resolveServerCommand, ServerCommand, START_FIX } from './serverCommand';
import { explicitSettings, Settings } from './settings';

const SECRET_KEY = 'lspilot.apiKey';

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

/** An action started from this extension whose stream has not been seen yet. */
interface Pending {
  uri: string;
  command: string;
  session?: number;
  token?: string;
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

const pending: Pending[] = [];
const tokenSessions = new Map<string, number>();
const ignoredTokens = new Set<string>();

export async function activate(ctx: vscode.ExtensionContext): Promise<void> {
  context = ctx;
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
    void vscode.window.showInformationMessage('lspilot: the API key was removed from secret storage.');
  });
  register('lspilot.restartServer', restartServer);
  register('lspilot.showOutput', () => output.show(true));

  ctx.subscriptions.push(
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (event.affectsConfiguration('lspilot.serverCommand') || event.affectsConfiguration('lspilot.pythonPath')) {
        await restartServer();
      }
    }),
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
    output.appendLine(`[lspilot] cannot start the server: ${problem}`);
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

async function spawnServer(cmd: ServerCommand): Promise<ChildProcess> {
  stderrTail = [];
  const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? os.homedir();
  const child = spawn(cmd.command, cmd.args, { cwd, env: process.env, stdio: 'pipe', windowsHide: true });
  child.stderr.on('data', (data: Buffer) => {
    for (const line of data.toString('utf8').split(/\r?\n/)) {
      if (line.trim() !== '') {
        stderrTail.push(line.trim());
      }
    }
    stderrTail = stderrTail.slice(-20);
  });
  child.on('exit', (code, signal) => {
    output.appendLine(`[lspilot] server exited (${signal ?? `code ${code}`})`);
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', () => resolve());
    child.once('error', (error) => reject(error));
  });
  serverProcess = child;
  return child;
}

function showStartError(cmd: ServerCommand, reason: string): void {
  const message =
    `lspilot: the language server could not start: ${reason} (command: ${describe(cmd)}, from ${cmd.source}). ` + START_FIX;
  void vscode.window.showErrorMessage(message, 'Open Settings', 'Show Output').then((choice) => {
    if (choice === 'Open Settings') {
      void vscode.commands.executeCommand('workbench.action.openSettings', 'lspilot.serverCommand lspilot.pythonPath');
    } else if (choice === 'Show Output') {
      output.show(true);
    }
  });
}

function clientOptions(): LanguageClientOptions {
  const initializationOptions: Settings = { explainShow: 'none', ...explicitSettings(undefined, secretApiKey) };
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
      executeCommand: (command, args: unknown[], next) => {
        const spec = ACTIONS[command];
        const first = args[0];
        if (spec === undefined || typeof first !== 'object' || first === null) {
          const passThrough: unknown = next(command, args);
          return passThrough;
        }
        const argument = first as Record<string, unknown>;
        const custom = command === 'lspilot.run' ? customActions().find((a) => a.id === argument.action) : undefined;
        return trackAction(
          { ...spec, title: custom?.title ?? spec.title, show: custom !== undefined ? custom.apply === 'show' : spec.show },
          argument,
          async () => (await next(command, args)) as ActionResult | null,
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
  const settings = explicitSettings(scope, secretApiKey);
  if (settings.explainShow === undefined) {
    settings.explainShow = 'none'; // this extension renders explanations itself
  }
  return settings;
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

function onStream(params: StreamParams): void {
  const key = String(params.token);
  let session = tokenSessions.get(key);
  if (session === undefined) {
    if (ignoredTokens.has(key)) {
      return;
    }
    const claim = pending.find((p) => p.token === undefined && p.command === params.command && sameUri(p.uri, params.uri));
    if (claim !== undefined) {
      claim.token = key;
      session = claim.session;
    } else if (params.command === 'lspilot.explain') {
      // started by something else than this extension's commands
      session = panel.start(`Explanation: ${path.basename(vscode.Uri.parse(params.uri).path)}`, 'streaming');
    }
    if (session === undefined) {
      ignoredTokens.add(key);
      return;
    }
    tokenSessions.set(key, session);
  }
  panel.append(session, params.delta ?? '');
  if (params.done && !pending.some((p) => p.token === key)) {
    // nobody waits for a result that would say how it ended
    panel.finish(session, 'done');
    tokenSessions.delete(key);
  }
}

function sameUri(a: string, b: string): boolean {
  if (a === b) {
    return true;
  }
  try {
    return vscode.Uri.parse(a).toString() === vscode.Uri.parse(b).toString();
  } catch {
    return false;
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
  await trackAction(spec, args, async () =>
    (await c.sendRequest(ExecuteCommandRequest.type, { command: spec.command, arguments: [args] })) as ActionResult | null,
  );
}

/**
 * Runs one action request and presents it: the panel for shown answers (fed by `lspilot/stream`,
 * finished with the result), a status bar note when it ends. The server reports a failed action
 * itself (window/showMessage); a refused request (bad arguments) is reported here.
 */
async function trackAction(
  spec: ActionSpec,
  args: Record<string, unknown>,
  send: () => Promise<ActionResult | null>,
): Promise<ActionResult> {
  const uri = typeof args.uri === 'string' ? args.uri : '';
  const entry: Pending = { uri, command: spec.command };
  if (spec.show) {
    const what = spec.command === 'lspilot.explain' ? 'Explanation' : spec.title;
    entry.session = panel.start(`${what}: ${describeTarget(uri, args.range)}`);
  }
  pending.push(entry);
  let result: ActionResult;
  let refused: string | undefined;
  try {
    result = (await send()) ?? { status: 'done' };
  } catch (error) {
    refused = errorMessage(error);
    result = { status: 'failed', error: { type: 'request', message: refused } };
  } finally {
    pending.splice(pending.indexOf(entry), 1);
    if (entry.token !== undefined) {
      tokenSessions.delete(entry.token);
    }
  }
  const detail = result.error?.message ?? undefined;
  if (entry.session !== undefined) {
    panel.finish(entry.session, result.status, result.text, result.status === 'failed' ? detail : undefined);
  }
  if (refused !== undefined) {
    void vscode.window.showErrorMessage(`lspilot: ${spec.title}: ${refused}`);
  }
  if (result.status === 'done' || result.status === 'cancelled') {
    vscode.window.setStatusBarMessage(`lspilot: ${spec.title} ${result.status}`, 5000);
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
  const key = await vscode.window.showInputBox({
    title: 'lspilot: Set API key',
    prompt: 'API key for the endpoint in lspilot.baseUrl. It is kept in VS Code\'s secret storage, not in settings.',
    password: true,
    ignoreFocusOut: true,
  });
  if (key === undefined) {
    return;
  }
  if (key.trim() === '') {
    await context.secrets.delete(SECRET_KEY);
  } else {
    await context.secrets.store(SECRET_KEY, key.trim());
  }
  void vscode.window.showInformationMessage('lspilot: API key saved in secret storage.');
}

function errorMessage(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  return String(error);
}
