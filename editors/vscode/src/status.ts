import * as vscode from 'vscode';
import { LanguageClient } from 'vscode-languageclient/node';
import { errorMessage } from './errors';
import { execute, ServerStatus } from './protocol';
import { describeMcpServer, describeStatus, sessionFigure } from './usage';

/** The status menu waits this long for a fresh status (MCP servers' states), else shows the last one. */
const MENU_STATUS_MS = 1000;
/** After completions the status is asked at most this often. */
const AFTER_COMPLETIONS_MS = 2000;

/**
 * The status bar item: the model, a spinner while something runs, the session's cost; a click opens
 * the lspilot menu. Its figures come from the server's `lspilot.status`, asked when something
 * happened (the server started, an action ended, the settings changed, completions answered:
 * throttled), never on a timer. At most one question is in flight; one asked meanwhile follows it.
 */
export class StatusBar implements vscode.Disposable {
  private readonly item: vscode.StatusBarItem;
  private status: ServerStatus | undefined;
  private problem: string | undefined;
  private asking: Promise<void> | undefined;
  private again = false;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly client: () => LanguageClient | undefined,
    /** True while an action or a chat answer of this window runs, or a completion keeps the user waiting. */
    private readonly busy: () => boolean,
    /** `on`, `paused …`, `off …`: the inline completions. */
    private readonly completions: () => { paused: boolean; describe: string },
  ) {
    this.item = vscode.window.createStatusBarItem('lspilot.statusItem', vscode.StatusBarAlignment.Right, 100);
    this.item.name = 'lspilot';
    this.item.command = 'lspilot.statusMenu';
    this.render();
    this.item.show();
  }

  /** Asks the server for its status now (an action ended, the server started). */
  refresh(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    void this.ask();
  }

  /** Asks soon, at most once per AFTER_COMPLETIONS_MS (completions answered). */
  refreshSoon(): void {
    if (this.timer === undefined) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.ask();
      }, AFTER_COMPLETIONS_MS);
    }
  }

  /** The spinner and the pause sign follow what runs now; no question to the server. */
  render(): void {
    const c = this.client();
    const model = this.status?.model ?? 'lspilot';
    const figure = sessionFigure(this.status?.session);
    const { paused, describe } = this.completions();
    const running = this.busy() || (this.status?.running?.length ?? 0) > 0;
    let icon = '$(sparkle)';
    if (c === undefined) {
      icon = '$(circle-slash)';
    } else if (running) {
      icon = '$(loading~spin)';
    } else if (paused) {
      icon = '$(debug-pause)';
    }
    this.item.text = `${icon} ${model}${figure !== '' ? ` ${figure}` : ''}`;
    const lines =
      c === undefined
        ? ['lspilot: the server is not running']
        : this.status !== undefined
          ? describeStatus(this.status, describe)
          : [`lspilot: ${this.problem ?? 'asking the server…'}`, `Completions: ${describe}`];
    this.item.tooltip = `${lines.join('\n')}\n\nClick for the lspilot menu.`;
    this.item.accessibilityInformation = { label: `lspilot ${model} ${figure}`.trim() };
  }

  /** The latest status, asked again first when the server is running. */
  async current(): Promise<ServerStatus | undefined> {
    await this.ask();
    return this.status;
  }

  /** The status asked now, or the last one when the server takes longer than `ms` to answer. */
  async recent(ms: number): Promise<ServerStatus | undefined> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms);
    });
    await Promise.race([this.ask(), late]);
    clearTimeout(timer);
    return this.status;
  }

  lastProblem(): string | undefined {
    return this.problem;
  }

  /** One question at a time; asked again meanwhile, it is asked once more when that one answers. */
  private ask(): Promise<void> {
    if (this.asking !== undefined) {
      this.again = true;
      return this.asking;
    }
    this.asking = (async () => {
      do {
        this.again = false;
        await this.askOnce();
      } while (this.again);
    })().finally(() => {
      this.asking = undefined;
    });
    return this.asking;
  }

  private async askOnce(): Promise<void> {
    const c = this.client();
    if (c !== undefined) {
      try {
        this.status = (await execute(c, 'lspilot.status', undefined)) ?? undefined;
        this.problem = undefined;
      } catch (error) {
        this.problem = `no status from the server: ${errorMessage(error)}`;
      }
    }
    this.render();
  }

  dispose(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
    }
    this.item.dispose();
  }
}

/**
 * The status bar item's menu: its commands, then the configured MCP servers with their state and
 * tool count (from `lspilot.status`'s `mcpServers`); picking a server shows the whole status.
 */
export async function showStatusMenu(bar: StatusBar, paused: boolean): Promise<void> {
  type Item = vscode.QuickPickItem & { command?: string };
  const status = bar.client() !== undefined ? await bar.recent(MENU_STATUS_MS) : undefined;
  const items: Item[] = [
    { label: '$(info) Show status', command: 'lspilot.showStatus' },
    { label: '$(stop-circle) Cancel all', description: 'running actions', command: 'lspilot.cancelAll' },
    paused
      ? { label: '$(play) Resume completions', command: 'lspilot.resumeCompletions' }
      : { label: '$(debug-pause) Pause completions', description: 'in this window', command: 'lspilot.pauseCompletions' },
    { label: '$(key) Set API key', command: 'lspilot.setApiKey' },
    { label: '$(output) Open log', command: 'lspilot.showOutput' },
  ];
  const servers = status?.mcpServers ?? [];
  if (servers.length > 0) {
    items.push({ label: 'MCP servers', kind: vscode.QuickPickItemKind.Separator });
    for (const server of servers) {
      const icon = server.state === 'running' ? '$(plug)' : server.state === 'failed' || server.state === 'refused' ? '$(error)' : '$(debug-disconnect)';
      items.push({ label: `${icon} ${server.name}`, description: describeMcpServer(server), command: 'lspilot.showStatus' });
    }
  }
  const picked = await vscode.window.showQuickPick(items, { title: 'lspilot', placeHolder: 'lspilot' });
  if (picked?.command !== undefined) {
    await vscode.commands.executeCommand(picked.command);
  }
}

/** **lspilot: Show status**: what the server says about itself and this session, in a dialog. */
export async function showStatus(bar: StatusBar, completions: string): Promise<void> {
  const status = await bar.current();
  if (status === undefined) {
    void vscode.window.showWarningMessage(`lspilot: ${bar.lastProblem() ?? 'the server is not running'}.`);
    return;
  }
  await vscode.window.showInformationMessage('lspilot status', { modal: true, detail: describeStatus(status, completions).join('\n') });
}
