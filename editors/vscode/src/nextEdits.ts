import * as vscode from 'vscode';
import { LanguageClient, State } from 'vscode-languageclient/node';
import { errorMessage } from './errors';
import { copilotInlineEdit, InlineEdit, offersInlineEdits } from './protocol';

/** Context key: a next edit suggestion is shown in the active editor (Tab and Escape are ours). */
const SHOWN_KEY = 'lspilot.nextEditShown';
/**
 * How long typing must pause before this extension asks. The server waits for its own pause
 * (250 ms since the last change) too; this one only keeps a request per keystroke off the wire.
 */
const PAUSE_MS = 150;
/** The proposed text shown after the struck text: one line of it at most, cut here. */
const SHOWN_CHARS = 80;

/** A suggestion on display: the edit, for the document at exactly this version. */
interface Shown {
  editor: vscode.TextEditor;
  version: number;
  range: vscode.Range;
  newText: string;
}

/**
 * Next edit suggestions: after an edit and a pause, asks the server's `textDocument/copilotInlineEdit`
 * (when it offers it and `lspilot.nextEditSuggestions` is on) and shows the suggested edit where it
 * is: the text it replaces struck through, the proposed text right after it, and the whole change as
 * a diff on hover. VS Code's stable API (1.100) has no inline edit UI for an edit away from the
 * cursor (`InlineCompletionItem` ranges must contain the cursor; `isInlineEdit` is proposed), hence
 * the decoration. Tab jumps to it, Tab there accepts it (one undo step), Escape dismisses it. Any
 * change to the document clears it: an edit is only ever applied to the version it was made for.
 */
export class NextEdits implements vscode.Disposable {
  private readonly removed = vscode.window.createTextEditorDecorationType({
    textDecoration: 'line-through',
    backgroundColor: new vscode.ThemeColor('diffEditor.removedTextBackground'),
    borderRadius: '2px',
  });
  private readonly inserted = vscode.window.createTextEditorDecorationType({});
  private shown: Shown | undefined;
  private timer: NodeJS.Timeout | undefined;
  private request: vscode.CancellationTokenSource | undefined;
  private readonly subscriptions: vscode.Disposable[] = [];

  constructor(
    private readonly output: vscode.OutputChannel,
    private readonly client: () => LanguageClient | undefined,
    /** Pause completions (the status menu) pauses these too: nothing is asked meanwhile. */
    private readonly paused: () => boolean,
  ) {
    void vscode.commands.executeCommand('setContext', SHOWN_KEY, false);
    this.subscriptions.push(
      vscode.workspace.onDidChangeTextDocument((event) => this.changed(event)),
      vscode.window.onDidChangeActiveTextEditor(() => this.clear()),
      vscode.workspace.onDidCloseTextDocument((document) => {
        if (this.shown?.editor.document === document) {
          this.clear();
        }
      }),
    );
  }

  register(subscriptions: vscode.Disposable[]): void {
    const register = (id: string, fn: () => unknown): void => {
      subscriptions.push(vscode.commands.registerCommand(id, fn));
    };
    register('lspilot.nextEdit.jump', () => this.jump());
    register('lspilot.nextEdit.accept', () => this.accept());
    register('lspilot.nextEdit.dismiss', () => this.clear());
    register('lspilot.nextEdit.tab', () => (this.atSuggestion() ? this.accept() : this.jump()));
  }

  /** Whether a suggestion is on display (for the status and tests). */
  get showing(): boolean {
    return this.shown !== undefined;
  }

  private enabled(c: LanguageClient): boolean {
    return (
      vscode.workspace.getConfiguration('lspilot').get<boolean>('nextEditSuggestions') !== false &&
      offersInlineEdits(c.initializeResult?.capabilities)
    );
  }

  private changed(event: vscode.TextDocumentChangeEvent): void {
    if (event.contentChanges.length === 0) {
      return; // a dirty-state change only
    }
    if (this.shown?.editor.document === event.document) {
      this.clear(); // its version is gone: the suggestion is stale
    }
    const editor = vscode.window.activeTextEditor;
    if (editor?.document !== event.document) {
      return;
    }
    this.cancelRequest();
    if (this.paused()) {
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.ask(editor);
    }, PAUSE_MS);
  }

  private cancelRequest(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    this.request?.cancel();
    this.request?.dispose();
    this.request = undefined;
  }

  private async ask(editor: vscode.TextEditor): Promise<void> {
    const c = this.client();
    if (c === undefined || this.paused() || !this.enabled(c) || c.state !== State.Running) {
      return;
    }
    const document = editor.document;
    const version = document.version;
    const request = new vscode.CancellationTokenSource();
    this.request = request;
    let edits: InlineEdit[];
    try {
      const answer = await copilotInlineEdit(
        c,
        {
          textDocument: { uri: c.code2ProtocolConverter.asUri(document.uri), version },
          position: c.code2ProtocolConverter.asPosition(editor.selection.active),
        },
        request.token,
      );
      edits = answer.edits;
    } catch (error) {
      if (!request.token.isCancellationRequested) {
        this.output.appendLine(`[lspilot] next edit suggestion failed: ${errorMessage(error)}`);
      }
      return;
    } finally {
      if (this.request === request) {
        this.request = undefined;
      }
      request.dispose();
    }
    // Only for the version it was asked at, in the editor still showing it.
    const edit = edits.find((e) => e.textDocument?.version === version);
    if (
      edit === undefined ||
      request.token.isCancellationRequested ||
      document.version !== version ||
      vscode.window.activeTextEditor !== editor
    ) {
      return;
    }
    const range = c.protocol2CodeConverter.asRange(edit.range);
    const newText = edit.newText ?? edit.text;
    if (document.getText(range) === newText) {
      return; // restates the text: nothing to suggest
    }
    this.show({ editor, version, range, newText });
  }

  private show(shown: Shown): void {
    this.shown = shown;
    const { editor, range, newText } = shown;
    // The diff on hover shows the whole lines the edit touches, before and after.
    const document = editor.document;
    const lines = new vscode.Range(range.start.line, 0, range.end.line, document.lineAt(range.end.line).text.length);
    const before = document.getText(lines);
    const after =
      document.getText(new vscode.Range(lines.start, range.start)) + newText + document.getText(new vscode.Range(range.end, lines.end));
    const hover = new vscode.MarkdownString();
    hover.appendMarkdown('**lspilot: next edit** — Tab jumps here, Tab again accepts, Escape dismisses\n\n');
    hover.appendCodeblock(diffLines(before, after), 'diff');
    const firstLine = newText.split('\n')[0];
    const more = newText.includes('\n') || firstLine.length > SHOWN_CHARS;
    const contentText = (firstLine.length > SHOWN_CHARS ? firstLine.slice(0, SHOWN_CHARS) : firstLine) + (more ? ' …' : '');
    editor.setDecorations(this.removed, range.isEmpty ? [] : [{ range, hoverMessage: hover }]);
    editor.setDecorations(this.inserted, [
      {
        range: new vscode.Range(range.end, range.end),
        hoverMessage: range.isEmpty ? hover : undefined,
        renderOptions: {
          after: {
            contentText: contentText === '' ? '⌫' : contentText,
            color: new vscode.ThemeColor('editorGhostText.foreground'),
            backgroundColor: new vscode.ThemeColor('diffEditor.insertedTextBackground'),
            border: '1px solid',
            borderColor: new vscode.ThemeColor('diffEditor.insertedLineBackground'),
          },
        },
      },
    ]);
    void vscode.commands.executeCommand('setContext', SHOWN_KEY, true);
  }

  /** Whether the cursor is on the suggestion's lines (Tab accepts there, elsewhere it jumps). */
  private atSuggestion(): boolean {
    const shown = this.live();
    if (shown === undefined) {
      return false;
    }
    const line = shown.editor.selection.active.line;
    return line >= shown.range.start.line && line <= shown.range.end.line;
  }

  /** The suggestion on display, if its document is still at its version (else it is cleared). */
  private live(): Shown | undefined {
    const shown = this.shown;
    if (shown !== undefined && shown.editor.document.version !== shown.version) {
      this.clear();
      return undefined;
    }
    return shown;
  }

  private jump(): void {
    const shown = this.live();
    if (shown === undefined) {
      return;
    }
    shown.editor.selection = new vscode.Selection(shown.range.start, shown.range.start);
    shown.editor.revealRange(shown.range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
  }

  private async accept(): Promise<void> {
    const shown = this.live();
    if (shown === undefined) {
      return;
    }
    this.clear();
    // One edit call: one undo step. Refused if the document moved on since (it cannot have: any
    // change clears the suggestion, but the edit is applied to its version only).
    const applied = await shown.editor.edit((builder) => builder.replace(shown.range, shown.newText), {
      undoStopBefore: true,
      undoStopAfter: true,
    });
    if (applied) {
      const end = shown.editor.document.positionAt(shown.editor.document.offsetAt(shown.range.start) + shown.newText.length);
      shown.editor.selection = new vscode.Selection(end, end);
    }
  }

  /** Removes the suggestion on display, if any. */
  clear(): void {
    const shown = this.shown;
    if (shown === undefined) {
      return;
    }
    this.shown = undefined;
    shown.editor.setDecorations(this.removed, []);
    shown.editor.setDecorations(this.inserted, []);
    void vscode.commands.executeCommand('setContext', SHOWN_KEY, false);
  }

  dispose(): void {
    this.cancelRequest();
    this.clear();
    this.removed.dispose();
    this.inserted.dispose();
    for (const subscription of this.subscriptions) {
      subscription.dispose();
    }
  }
}

/** The change as diff lines: `-` the old lines, `+` the new ones. */
function diffLines(old: string, proposed: string): string {
  const minus = old.split('\n').map((line) => `-${line}`);
  const plus = proposed.split('\n').map((line) => `+${line}`);
  return [...minus, ...plus].join('\n');
}
