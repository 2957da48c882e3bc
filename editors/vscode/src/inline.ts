import * as vscode from 'vscode';
import {
  ClientCapabilities,
  DocumentSelector,
  FeatureState,
  LanguageClient,
  ServerCapabilities,
  StaticFeature,
} from 'vscode-languageclient/node';
import { errorMessage } from './errors';
import type { InlineCompletionItem, InlineCompletionResult } from './protocol';

const METHOD = 'textDocument/inlineCompletion';
/** Context key for the menus: completions are paused in this window. */
const PAUSED_KEY = 'lspilot.completionsPaused';
/** LSP 3.18's InlineCompletionTriggerKind. */
const LSP_INVOKED = 1;
const LSP_AUTOMATIC = 2;

/**
 * Ghost text from the server's `textDocument/inlineCompletion`.
 *
 * Not vscode-languageclient 9's own inline completion feature (a proposed one): it sends VS Code's
 * trigger kinds as they are (0 and 1, where LSP 3.18 says Invoked = 1, Automatic = 2), passes the
 * selected completion's range unconverted, and leaves an item without `range` to VS Code's default
 * range (the word before the cursor to the end of the line), where LSP inserts it at the position.
 * This provider goes through the same client (its converters, and VS Code's cancellation token, so a
 * superseded request is cancelled with `$/cancelRequest`), and adds no debounce of its own: the
 * server debounces (`completionDebounceMs`).
 *
 * Pause is kept in memory, per window, until resumed or the window reloads: a quick "not now" that
 * asks the server nothing while on, unlike `lspilot.inlineCompletions` (the server's setting,
 * written in a settings file, which a workspace may set), which stays the lasting switch.
 */
/**
 * A completion in flight this long spins the status item: the user is waiting for ghost text (a
 * slow or local model). Quicker ones, one per pause in typing, would only make it flicker.
 */
const SPIN_AFTER_MS = 500;

export class InlineCompletions implements vscode.Disposable {
  private pausedNow = false;
  private slowNow = 0;
  private readonly changed = new vscode.EventEmitter<void>();
  private readonly answered = new vscode.EventEmitter<void>();
  /** Fires when the pause flips, or a request has been in flight SPIN_AFTER_MS, or it ends. */
  readonly onDidChange = this.changed.event;
  /** Fires when the server answered a request (its usage may have changed the session's cost). */
  readonly onDidAnswer = this.answered.event;
  private lastFailure: string | undefined;

  constructor(
    private readonly output: vscode.OutputChannel,
    private readonly client: () => LanguageClient | undefined,
  ) {
    void vscode.commands.executeCommand('setContext', PAUSED_KEY, false);
  }

  get paused(): boolean {
    return this.pausedNow;
  }

  /** Requests in flight for SPIN_AFTER_MS or more. */
  get waiting(): number {
    return this.slowNow;
  }

  /** `on`, `paused (this window)` or `off (lspilot.inlineCompletions)`, for the status. */
  describe(): string {
    if (vscode.workspace.getConfiguration('lspilot').get<boolean>('inlineCompletions') === false) {
      return 'off (lspilot.inlineCompletions)';
    }
    return this.pausedNow ? 'paused (this window)' : 'on';
  }

  setPaused(paused: boolean): void {
    if (this.pausedNow === paused) {
      return;
    }
    this.pausedNow = paused;
    void vscode.commands.executeCommand('setContext', PAUSED_KEY, paused);
    if (paused) {
      void vscode.commands.executeCommand('editor.action.inlineSuggest.hide');
    }
    this.output.appendLine(`[lspilot] inline completions ${paused ? 'paused' : 'resumed'}`);
    vscode.window.setStatusBarMessage(`lspilot: completions ${paused ? 'paused' : 'resumed'}`, 3000);
    this.changed.fire();
  }

  /** The client feature: announces the capability and, when the server has it, the provider. */
  feature(): StaticFeature {
    let registration: vscode.Disposable | undefined;
    return {
      fillClientCapabilities: (capabilities: ClientCapabilities) => {
        const textDocument = (capabilities.textDocument ??= {}) as Record<string, unknown>;
        textDocument.inlineCompletion = { dynamicRegistration: false };
      },
      initialize: (capabilities: ServerCapabilities, selector: DocumentSelector | undefined) => {
        registration?.dispose();
        registration = undefined;
        const advertised = (capabilities as { inlineCompletionProvider?: unknown }).inlineCompletionProvider;
        if (advertised === undefined || advertised === false || advertised === null) {
          this.output.appendLine('[lspilot] the server has no inline completions (no inlineCompletionProvider)');
          return;
        }
        registration = vscode.languages.registerInlineCompletionItemProvider(
          (selector as vscode.DocumentSelector | undefined) ?? [{ scheme: 'file' }, { scheme: 'untitled' }],
          { provideInlineCompletionItems: (document, position, context, token) => this.provide(document, position, context, token) },
        );
      },
      getState: (): FeatureState => ({ kind: 'static' }),
      clear: () => {
        registration?.dispose();
        registration = undefined;
      },
    };
  }

  private async provide(
    document: vscode.TextDocument,
    position: vscode.Position,
    context: vscode.InlineCompletionContext,
    token: vscode.CancellationToken,
  ): Promise<vscode.InlineCompletionItem[] | undefined> {
    const c = this.client();
    if (this.pausedNow || c === undefined || token.isCancellationRequested) {
      return undefined;
    }
    if (vscode.workspace.getConfiguration('lspilot', document.uri).get<boolean>('inlineCompletions') === false) {
      return undefined; // the server would answer nothing
    }
    const convert = c.code2ProtocolConverter;
    const selected = context.selectedCompletionInfo;
    const params = {
      textDocument: convert.asTextDocumentIdentifier(document),
      position: convert.asPosition(position),
      context: {
        triggerKind: context.triggerKind === vscode.InlineCompletionTriggerKind.Invoke ? LSP_INVOKED : LSP_AUTOMATIC,
        ...(selected !== undefined ? { selectedCompletionInfo: { range: convert.asRange(selected.range), text: selected.text } } : {}),
      },
    };
    let slow = false;
    const timer = setTimeout(() => {
      slow = true;
      this.slowNow += 1;
      this.changed.fire();
    }, SPIN_AFTER_MS);
    try {
      const result = await c.sendRequest<InlineCompletionResult>(METHOD, params, token);
      this.answered.fire();
      if (token.isCancellationRequested || this.pausedNow) {
        return undefined;
      }
      const items = Array.isArray(result) ? result : (result?.items ?? []);
      return items.map((item) => this.asItem(c, item, position));
    } catch (error) {
      if (!token.isCancellationRequested) {
        const message = errorMessage(error);
        if (message !== this.lastFailure) {
          this.lastFailure = message; // once per reason, not once a keystroke
          this.output.appendLine(`[lspilot] inline completion failed: ${message}`);
        }
      }
      return undefined;
    } finally {
      clearTimeout(timer);
      if (slow) {
        this.slowNow -= 1;
        this.changed.fire();
      }
    }
  }

  /** An LSP item as VS Code's: without `range` it is inserted at the position (not VS Code's default range). */
  private asItem(c: LanguageClient, item: InlineCompletionItem, position: vscode.Position): vscode.InlineCompletionItem {
    const text = typeof item.insertText === 'string' ? item.insertText : new vscode.SnippetString(item.insertText.value);
    const range = item.range !== undefined ? c.protocol2CodeConverter.asRange(item.range) : new vscode.Range(position, position);
    const converted = new vscode.InlineCompletionItem(text, range);
    if (typeof item.filterText === 'string') {
      converted.filterText = item.filterText;
    }
    return converted;
  }

  dispose(): void {
    this.changed.dispose();
    this.answered.dispose();
  }
}
