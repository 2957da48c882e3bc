import * as vscode from 'vscode';
import { effectiveBaseUrl, explicitSettings, hostOf, Settings } from './settings';

const SECRET_KEY = 'lspilot.apiKey';
/** globalState: the host (`host[:port]` of the base URL) the key in secret storage was stored for. */
const KEY_HOST = 'lspilot.apiKeyHost';
/** globalState: `{ host: true | false }`, the user's answers to "Send your lspilot API key to HOST?". */
const KEY_ANSWERS = 'lspilot.apiKeyHosts';

/**
 * The API key in VS Code's secret storage, bound to the host it was stored for. A workspace's
 * lspilot.baseUrl cannot take it elsewhere unasked: for another host the user is asked once, and
 * the answer is remembered for that host.
 */
export class ApiKeys implements vscode.Disposable {
  private secret: string | undefined;
  /** Questions "Send your lspilot API key to HOST?" being asked, by host. */
  private readonly asking = new Map<string, Promise<void>>();
  private readonly subscriptions: vscode.Disposable[] = [];

  /** `changed`: the settings the server sees changed (a key stored or removed, a host allowed). */
  constructor(
    private readonly context: vscode.ExtensionContext,
    private readonly output: vscode.OutputChannel,
    private readonly changed: () => Promise<void>,
  ) {}

  async load(): Promise<void> {
    this.secret = await this.context.secrets.get(SECRET_KEY);
    this.subscriptions.push(
      this.context.secrets.onDidChange(async (event) => {
        if (event.key === SECRET_KEY) {
          this.secret = await this.context.secrets.get(SECRET_KEY);
          await this.changed();
        }
      }),
    );
  }

  /**
   * The key from secret storage when these settings send requests to the host it was stored for, or
   * to a host the user allowed; otherwise undefined, and the user is asked (once per host) whether it
   * may go there.
   */
  forSettings(settings: Settings): string | undefined {
    if (!this.secret) {
      return undefined;
    }
    const host = hostOf(effectiveBaseUrl(settings));
    if (host === undefined) {
      return undefined; // `local` (no key needed) or not a URL (the server refuses it)
    }
    const home = this.storedKeyHost();
    if (host === home) {
      return this.secret;
    }
    const answer = this.context.globalState.get<Record<string, boolean>>(KEY_ANSWERS, {})[host];
    if (answer === true) {
      return this.secret;
    }
    if (answer === undefined) {
      void this.askToSend(host, home);
    }
    return undefined;
  }

  /** The host the stored key is bound to. A key stored before keys were bound gets the user's own endpoint. */
  private storedKeyHost(): string | undefined {
    let host = this.context.globalState.get<string>(KEY_HOST);
    if (host === undefined) {
      const info = vscode.workspace.getConfiguration('lspilot').inspect('baseUrl');
      const userBaseUrl = info?.globalValue;
      host = hostOf(effectiveBaseUrl(typeof userBaseUrl === 'string' ? { baseUrl: userBaseUrl } : {}));
      if (host !== undefined) {
        void this.context.globalState.update(KEY_HOST, host);
      }
    }
    return host;
  }

  /**
   * Asks "Send your lspilot API key to HOST?" (modal: Allow / Cancel) and remembers the answer for the
   * host. The configuration answer in flight goes without the key; after Allow the server is told the
   * settings changed and reads them again, key included.
   */
  private askToSend(host: string, home: string | undefined): Promise<void> {
    let question = this.asking.get(host);
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
        const answers = { ...this.context.globalState.get<Record<string, boolean>>(KEY_ANSWERS, {}) };
        answers[host] = choice === 'Allow';
        await this.context.globalState.update(KEY_ANSWERS, answers);
        this.output.appendLine(`[lspilot] API key for ${host}: ${answers[host] ? 'allowed' : 'not sent'}`);
        if (answers[host]) {
          await this.changed();
        }
      })().finally(() => this.asking.delete(host));
      this.asking.set(host, question);
    }
    return question;
  }

  /** **lspilot: Set API key**: stores the key for the host of the endpoint in use now. */
  async set(): Promise<void> {
    const scope = vscode.window.activeTextEditor?.document.uri;
    const baseUrl = effectiveBaseUrl(explicitSettings(scope));
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
    await this.context.globalState.update(KEY_ANSWERS, undefined);
    if (key.trim() === '') {
      await this.context.globalState.update(KEY_HOST, undefined);
      await this.context.secrets.delete(SECRET_KEY);
    } else {
      await this.context.globalState.update(KEY_HOST, host);
      await this.context.secrets.store(SECRET_KEY, key.trim());
    }
    void vscode.window.showInformationMessage(
      `lspilot: API key saved in secret storage${host !== undefined && key.trim() !== '' ? `, for ${host}` : ''}.`,
    );
  }

  /** **lspilot: Clear API key**. */
  async clear(): Promise<void> {
    await this.context.secrets.delete(SECRET_KEY);
    await this.context.globalState.update(KEY_HOST, undefined);
    await this.context.globalState.update(KEY_ANSWERS, undefined);
    void vscode.window.showInformationMessage('lspilot: the API key was removed from secret storage.');
  }

  dispose(): void {
    for (const subscription of this.subscriptions.splice(0)) {
      subscription.dispose();
    }
  }
}
