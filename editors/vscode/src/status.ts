import * as vscode from 'vscode';
import { LanguageClient } from 'vscode-languageclient/node';
import { errorMessage } from './errors';
import { execute, ServerStatus } from './protocol';
import { describeMcpServer, describeStatus, needsKey, sessionFigure } from './usage';

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
    // No key for a host that needs one: every request would fail, so the item says so at once.
    const keyMissing = c !== undefined && needsKey(this.status);
    let icon = '$(sparkle)';
    if (c === undefined) {
      icon = '$(circle-slash)';
    } else if (running) {
      icon = '$(loading~spin)';
    } else if (keyMissing) {
      icon = '$(warning)';
    } else if (paused) {
      icon = '$(debug-pause)';
    }
    this.item.text = `${icon} ${model}${figure !== '' ? ` ${figure}` : ''}`;
    this.item.backgroundColor = keyMissing ? new vscode.ThemeColor('statusBarItem.warningBackground') : undefined;
    const lines =
      c === undefined
        ? ['lspilot: the server is not running']
        : this.status !== undefined
          ? describeStatus(this.status, describe)
          : [`lspilot: ${this.problem ?? 'asking the server…'}`, `Completions: ${describe}`];
    if (keyMissing) {
      lines.unshift(`No API key is set for ${hostOf(this.status?.baseUrl)}: run lspilot: Set API key (click here).`, '');
    }
    this.item.tooltip = `${lines.join('\n')}\n\nClick for the lspilot menu.`;
    this.item.accessibilityInformation = { label: `lspilot ${model} ${figure}${keyMissing ? ', no API key set' : ''}`.trim() };
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

  /** The status asked last (no question to the server). */
  get last(): ServerStatus | undefined {
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
    ...(needsKey(status) ? [{ label: '$(warning) Set API key', description: 'none is set for this endpoint', command: 'lspilot.setApiKey' }] : []),
    { label: '$(info) Show status', command: 'lspilot.showStatus' },
    { label: '$(stop-circle) Cancel all', description: 'running actions', command: 'lspilot.cancelAll' },
    paused
      ? { label: '$(play) Resume completions', command: 'lspilot.resumeCompletions' }
      : { label: '$(debug-pause) Pause completions', description: 'in this window', command: 'lspilot.pauseCompletions' },
    ...(needsKey(status) ? [] : [{ label: '$(key) Set API key', command: 'lspilot.setApiKey' }]),
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

/**
 * **lspilot: Show status**: what the server says about itself and this session (split into actions,
 * chat, ghost text and next edits), as a quick pick one reads and dismisses with Escape. Picking the
 * API key line sets the key; the last line opens the log.
 */
export async function showStatus(bar: StatusBar, completions: string): Promise<void> {
  const status = await bar.current();
  if (status === undefined) {
    void vscode.window.showWarningMessage(`lspilot: ${bar.lastProblem() ?? 'the server is not running'}.`);
    return;
  }
  type Item = vscode.QuickPickItem & { command?: string };
  const lines = describeStatus(status, completions);
  const items: Item[] = [];
  for (const line of lines) {
    if (line.startsWith('This session:')) {
      items.push({ label: 'Usage', kind: vscode.QuickPickItemKind.Separator });
    } else if (line.startsWith('MCP server ') && !items.some((i) => i.label === 'MCP servers')) {
      items.push({ label: 'MCP servers', kind: vscode.QuickPickItemKind.Separator });
    }
    const item: Item = { label: line.trim() };
    if (line.startsWith('API key:')) {
      item.label = `$(key) ${line}`;
      item.description = status.apiKeySet === true ? 'pick to change it' : 'pick to set it';
      item.command = 'lspilot.setApiKey';
    }
    items.push(item);
  }
  items.push({ label: '', kind: vscode.QuickPickItemKind.Separator });
  items.push({ label: '$(output) Open log', command: 'lspilot.showOutput' });
  const picked = await vscode.window.showQuickPick(items, { title: 'lspilot status', placeHolder: 'lspilot status (Escape closes it)' });
  if (picked?.command !== undefined) {
    await vscode.commands.executeCommand(picked.command);
  }
}

/** `host[:port]` of a base URL, for the words of the warning. */
function hostOf(baseUrl: string | undefined): string {
  try {
    return new URL(baseUrl ?? '').host || (baseUrl ?? 'the endpoint');
  } catch {
    return baseUrl ?? 'the endpoint';
  }
}
