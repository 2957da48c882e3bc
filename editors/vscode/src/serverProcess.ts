import { ChildProcess, spawn } from 'child_process';
import * as os from 'os';
import * as vscode from 'vscode';
import {
  CloseAction,
  ConfigurationItem,
  DidChangeConfigurationNotification,
  ErrorAction,
  LanguageClient,
  LanguageClientOptions,
  Middleware,
  ResponseError,
  State,
  StreamInfo,
} from 'vscode-languageclient/node';
import { ApiKeys } from './apiKey';
import { errorMessage } from './errors';
import { checkRunnable, describe, resolveServerCommand, ServerCommand, serverEnvironment, START_FIX } from './serverCommand';
import { explicitSettings, Settings } from './settings';

/** What the rest of the extension adds to each client this part starts. */
export interface ServerHooks {
  /** Called with each new client before it starts: its notification handlers and features. */
  prepare(client: LanguageClient): void;
  /** The client's middleware beyond the settings (which this part answers). */
  middleware: Pick<Middleware, 'executeCommand' | 'handleWorkDoneProgress'>;
  /** The server stopped (or is restarted): whatever showed its work must close. */
  stopped(): void;
  /** The client started or stopped. */
  stateChanged(): void;
}

/**
 * The server process and its client: starts the server from the settings, restarts it when it dies
 * (at most 3 times in 3 minutes), stops it, and answers its `workspace/configuration` requests with
 * the settings the user set (plus the stored key for the host it belongs to).
 */
export class ServerProcess implements vscode.Disposable {
  private current: LanguageClient | undefined;
  private starting: Promise<LanguageClient | undefined> | undefined;
  private process: ChildProcess | undefined;
  private stderrTail: string[] = [];
  private initialized = false;
  private restarts: number[] = [];

  constructor(
    private readonly output: vscode.OutputChannel,
    private readonly keys: ApiKeys,
    private readonly hooks: ServerHooks,
  ) {}

  /** The client, when it is running. */
  get client(): LanguageClient | undefined {
    const c = this.current;
    return c !== undefined && c.state === State.Running ? c : undefined;
  }

  /** The running client, started first when needed; undefined when the server cannot start. */
  ensure(): Promise<LanguageClient | undefined> {
    const c = this.client;
    if (c !== undefined) {
      return Promise.resolve(c);
    }
    if (this.starting === undefined) {
      this.starting = this.start().finally(() => {
        this.starting = undefined;
      });
    }
    return this.starting;
  }

  async restart(): Promise<void> {
    await this.stop();
    const c = await this.ensure();
    if (c !== undefined) {
      vscode.window.setStatusBarMessage('lspilot: server restarted', 3000);
    }
  }

  async stop(): Promise<void> {
    const c = this.current;
    this.current = undefined;
    if (c !== undefined) {
      try {
        await c.dispose(2000);
      } catch {
        // the server may already be gone
      }
    }
    this.kill();
    this.hooks.stopped();
    this.hooks.stateChanged();
  }

  /** Tells the server its settings changed; it reads them again (workspace/configuration). */
  async pushSettings(): Promise<void> {
    const c = this.client;
    if (c === undefined) {
      return;
    }
    await c.sendNotification(DidChangeConfigurationNotification.type, { settings: { lspilot: this.settings() } });
  }

  dispose(): void {
    void this.stop();
  }

  private async start(): Promise<LanguageClient | undefined> {
    await this.stop();
    const cmd = resolveServerCommand(vscode.workspace.getConfiguration('lspilot'));
    const problem = checkRunnable(cmd);
    if (problem !== undefined) {
      this.showStartError(cmd, problem);
      return undefined;
    }
    this.output.appendLine(`[lspilot] starting the server: ${describe(cmd)} (from ${cmd.source})`);
    this.initialized = false;
    this.restarts = [];
    const c = new LanguageClient('lspilot', 'lspilot', () => this.spawn(cmd), this.clientOptions());
    this.hooks.prepare(c);
    c.onDidChangeState((event) => {
      if (event.newState === State.Stopped) {
        this.hooks.stopped();
      }
      this.hooks.stateChanged();
    });
    this.current = c;
    try {
      await c.start();
      this.initialized = true;
      this.hooks.stateChanged();
      return c;
    } catch (error) {
      const reason = this.stderrTail.length > 0 ? this.stderrTail.slice(-3).join(' | ') : errorMessage(error);
      this.showStartError(cmd, reason);
      this.current = undefined;
      try {
        await c.dispose(2000);
      } catch {
        // already gone
      }
      this.kill();
      return undefined;
    }
  }

  private kill(): void {
    const child = this.process;
    this.process = undefined;
    if (child !== undefined && child.exitCode === null && child.signalCode === null) {
      child.kill();
    }
  }

  /**
   * Starts the server. Its stderr is kept as a short tail for the messages about a server that could
   * not start or stopped, and is not copied into the output channel: the server logs there through
   * `window/logMessage` (its stderr is silent while an editor takes its log), and vscode-languageclient
   * would otherwise print both, every line twice. So the client gets the pipes (StreamInfo), not the
   * process, and this part stops the process itself.
   */
  private async spawn(cmd: ServerCommand): Promise<StreamInfo> {
    this.stderrTail = [];
    const cwd = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? os.homedir();
    const env = serverEnvironment(process.env, vscode.workspace.getConfiguration('http').get<string>('proxy'));
    const child = spawn(cmd.command, cmd.args, { cwd, env, stdio: 'pipe', windowsHide: true });
    child.stderr.on('data', (data: Buffer) => {
      for (const line of data.toString('utf8').split(/\r?\n/)) {
        if (line.trim() !== '') {
          this.stderrTail.push(line.trim());
        }
      }
      this.stderrTail = this.stderrTail.slice(-20);
    });
    child.on('exit', (code, signal) => {
      const how = signal ?? `code ${code}`;
      if (code !== 0 && signal === null && this.stderrTail.length > 0) {
        // It died on its own: what it said last (a traceback) went to stderr only.
        this.output.appendLine(`[lspilot] server exited (${how}); its last lines on stderr:`);
        for (const line of this.stderrTail.slice(-10)) {
          this.output.appendLine(`[lspilot]   ${line}`);
        }
      } else {
        this.output.appendLine(`[lspilot] server exited (${how})`);
      }
    });
    await new Promise<void>((resolve, reject) => {
      child.once('spawn', () => resolve());
      child.once('error', (error) => reject(error));
    });
    const previous = this.process;
    this.process = child;
    if (previous !== undefined && previous !== child && previous.exitCode === null && previous.signalCode === null) {
      previous.kill(); // the client restarted the server after a crash: the old one must not linger
    }
    return { reader: child.stdout, writer: child.stdin, detached: false };
  }

  private showStartError(cmd: ServerCommand, reason: string): void {
    const message =
      `lspilot: the language server could not start: ${reason} (command: ${describe(cmd)}, from ${cmd.source}). ` + START_FIX;
    this.output.appendLine(`[lspilot] ${message}`);
    void vscode.window.showErrorMessage(message, 'Open Settings', 'Show Output').then((choice) => {
      if (choice === 'Open Settings') {
        void vscode.commands.executeCommand('workbench.action.openSettings', 'lspilot.serverCommand lspilot.pythonPath');
      } else if (choice === 'Show Output') {
        this.output.show(true);
      }
    });
  }

  private clientOptions(): LanguageClientOptions {
    // Never the key from secret storage: an initialization option stays in force for the server's
    // whole life, even after lspilot.baseUrl moves to another host. It goes with each
    // workspace/configuration answer instead, for the host that answer names.
    const initializationOptions: Settings = { explainShow: 'none', ...explicitSettings(undefined) };
    return {
      documentSelector: [{ scheme: 'file' }, { scheme: 'untitled' }],
      outputChannel: this.output,
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
              const settings = this.settings(item.scopeUri);
              if (item.section === 'lspilot') {
                return settings;
              }
              return settings[(item.section ?? '').slice('lspilot.'.length)] ?? null;
            });
          },
          didChangeConfiguration: async () => {
            await this.pushSettings();
          },
        },
        ...this.hooks.middleware,
      },
      errorHandler: {
        error: (_error, _message, count) => ({ action: (count ?? 0) <= 3 ? ErrorAction.Continue : ErrorAction.Shutdown }),
        closed: () => {
          this.hooks.stopped();
          if (!this.initialized) {
            return { action: CloseAction.DoNotRestart, handled: true };
          }
          const now = Date.now();
          this.restarts = this.restarts.filter((t) => now - t < 3 * 60_000);
          this.restarts.push(now);
          if (this.restarts.length > 3) {
            const cmd = resolveServerCommand(vscode.workspace.getConfiguration('lspilot'));
            this.showStartError(
              cmd,
              `it stopped ${this.restarts.length} times in 3 minutes (last: ${this.stderrTail.slice(-1)[0] ?? 'no message'})`,
            );
            return { action: CloseAction.DoNotRestart, handled: true };
          }
          this.output.appendLine('[lspilot] the server stopped; restarting it');
          return { action: CloseAction.Restart, handled: true };
        },
      },
    };
  }

  /** The settings as the server should see them: only what the user set, plus this extension's needs. */
  private settings(scopeUri?: string | null): Settings {
    const scope = scopeUri ? vscode.Uri.parse(scopeUri) : undefined;
    const settings = explicitSettings(scope);
    if (settings.explainShow === undefined) {
      settings.explainShow = 'none'; // this extension renders explanations itself
    }
    if (settings.apiKey === undefined) {
      const key = this.keys.forSettings(settings);
      if (key !== undefined) {
        settings.apiKey = key;
      }
    }
    return settings;
  }
}
