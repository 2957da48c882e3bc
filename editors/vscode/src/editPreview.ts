import * as path from 'path';
import * as vscode from 'vscode';
import { ApplyWorkspaceEditParams, ApplyWorkspaceEditResult, LanguageClient, WorkspaceEdit } from 'vscode-languageclient/node';
import { errorMessage } from './errors';
import { applyTextEdits, FileChange, fileChanges, LspWorkspaceEdit, needsConfirmation, withoutAnnotations } from './previewText';

/** The scheme of the read-only documents that hold proposed text (the right side of a review's diff). */
export const PROPOSED = 'lspilot-proposed';

/** What the server is answered when the user rejected the change (contract: "declined"). */
export const DECLINED = 'declined';

/**
 * The read-only documents of the `lspilot-proposed` scheme: text set here, by URI, shows there. One
 * provider for the whole extension (the edit preview and the agent's Show diff).
 */
export class ProposedTexts implements vscode.Disposable {
  private static instance: ProposedTexts | undefined;
  private readonly texts = new Map<string, string>();
  private readonly changed = new vscode.EventEmitter<vscode.Uri>();
  private readonly registration: vscode.Disposable;
  private count = 0;

  static shared(): ProposedTexts {
    ProposedTexts.instance ??= new ProposedTexts();
    return ProposedTexts.instance;
  }

  private constructor() {
    this.registration = vscode.workspace.registerTextDocumentContentProvider(PROPOSED, {
      onDidChange: this.changed.event,
      provideTextDocumentContent: (uri) => this.texts.get(uri.toString()) ?? '',
    });
  }

  /** A fresh URI named like `shownPath` holding `text`. */
  add(shownPath: string, text: string): vscode.Uri {
    const uri = vscode.Uri.from({ scheme: PROPOSED, path: `/${shownPath.replace(/^\/+/, '')}`, query: `${++this.count}` });
    this.texts.set(uri.toString(), text);
    return uri;
  }

  delete(uri: vscode.Uri): void {
    this.texts.delete(uri.toString());
  }

  dispose(): void {
    this.registration.dispose();
    this.changed.dispose();
    this.texts.clear();
    ProposedTexts.instance = undefined;
  }
}

/** A change waiting for the user's Accept or Reject. */
interface Review {
  /** The right sides of its diffs. */
  proposed: vscode.Uri[];
  /** Closing its diff rejects it (an edit preview), or leaves the question open (an agent's step). */
  rejectOnClose: boolean;
  settle(accepted: boolean): void;
}

/**
 * lspilot's own edit preview. With `confirmEdits` (and for any edit whose change annotation needs
 * confirmation), the server's `workspace/applyEdit` opens VS Code's diff editor: the file as it is
 * against the text the edit would make, with Accept and Reject in the diff's title bar and in the
 * status bar (the server's progress says "Waiting for your review…" meanwhile). No notification
 * with buttons: VS Code cannot close one, so after an answer in the diff it would sit there with
 * buttons that do nothing, and hiding all toasts takes the action's own messages with it. Accept applies the edit without its annotation (one undo step) and answers
 * `{applied: true}`; Reject, closing the diff, or the server giving up answers
 * `{applied: false, failureReason: "declined"}`. Without the annotation an edit is applied as
 * vscode-languageclient does (VS Code's own Refactor Preview would show lspilot's change unticked,
 * on one line, and apply nothing).
 *
 * Every edit the server applies goes through here; a file the edit creates (the tests of Write tests)
 * is saved at once, so the file lspilot wrote is not left marked unsaved, and so are later edits to a
 * file lspilot created (test repairs) when it had no unsaved changes of the user's.
 */
export class EditPreview implements vscode.Disposable {
  private readonly reviews = new Set<Review>();
  /** Files lspilot's edits created in this window (test files). */
  private readonly created = new Set<string>();
  private readonly subscriptions: vscode.Disposable[] = [];
  private readonly texts = ProposedTexts.shared();
  /** Accept / Reject in the status bar too, while a review is open: the title bar's are icons. */
  private readonly bar: vscode.StatusBarItem[];

  constructor(private readonly output: vscode.OutputChannel) {
    const item = (id: string, text: string, command: string, tooltip: string): vscode.StatusBarItem => {
      const it = vscode.window.createStatusBarItem(id, vscode.StatusBarAlignment.Left, 1000);
      it.name = tooltip;
      it.text = text;
      it.command = command;
      it.tooltip = tooltip;
      it.backgroundColor = new vscode.ThemeColor('statusBarItem.warningBackground');
      return it;
    };
    this.bar = [
      item('lspilot.acceptEdit', "$(check) Accept lspilot's change", 'lspilot.acceptEdit', "Apply the change shown in lspilot's diff"),
      item('lspilot.rejectEdit', '$(close) Reject', 'lspilot.rejectEdit', "Leave the file as it is (lspilot's diff closes)"),
    ];
    this.subscriptions.push(...this.bar);
    this.subscriptions.push(
      vscode.commands.registerCommand('lspilot.acceptEdit', () => this.answer(true)),
      vscode.commands.registerCommand('lspilot.rejectEdit', () => this.answer(false)),
      // A review's diff closed without an answer: rejected.
      vscode.window.tabGroups.onDidChangeTabs((event) => {
        for (const tab of event.closed) {
          const input = tab.input;
          if (input instanceof vscode.TabInputTextDiff && input.modified.scheme === PROPOSED) {
            const review = this.reviewOf(input.modified);
            if (review !== undefined && !this.shown(review)) {
              if (review.rejectOnClose) {
                review.settle(false);
              } else {
                this.reviews.delete(review); // the question stays open in the chat view
                this.reviewing();
              }
            }
          }
        }
      }),
    );
  }

  /** The context key of the title bar's buttons, and the status bar's, follow the open reviews. */
  private reviewing(): void {
    const on = this.reviews.size > 0;
    void vscode.commands.executeCommand('setContext', 'lspilot.reviewing', on);
    for (const it of this.bar) {
      if (on) {
        it.show();
      } else {
        it.hide();
      }
    }
  }

  /** Whether any diff tab of the review is still open. */
  private shown(review: Review): boolean {
    const open = new Set(review.proposed.map((u) => u.toString()));
    return vscode.window.tabGroups.all.some((group) =>
      group.tabs.some((tab) => tab.input instanceof vscode.TabInputTextDiff && open.has(tab.input.modified.toString())),
    );
  }

  private reviewOf(uri: vscode.Uri): Review | undefined {
    const key = uri.toString();
    return [...this.reviews].find((r) => r.proposed.some((p) => p.toString() === key));
  }

  /** Accept / Reject: the review of the active diff, else the newest one. */
  private answer(accepted: boolean): void {
    const input = vscode.window.tabGroups.activeTabGroup.activeTab?.input;
    const active = input instanceof vscode.TabInputTextDiff ? this.reviewOf(input.modified) : undefined;
    const review = active ?? [...this.reviews].pop();
    review?.settle(accepted);
  }

  /**
   * Accept and Reject for a diff opened elsewhere (the agent's Show diff of a step it asks about):
   * `answer` gets the choice, once; closing the diff answers nothing.
   */
  watch(proposed: vscode.Uri, answer: (accepted: boolean) => void): void {
    let done = false;
    const review: Review = {
      proposed: [proposed],
      rejectOnClose: false,
      settle: (accepted) => {
        if (done) {
          return;
        }
        done = true;
        this.reviews.delete(review);
        this.reviewing();
        void this.close(review);
        answer(accepted);
      },
    };
    this.reviews.add(review);
    this.reviewing();
  }

  /** The client's `workspace/applyEdit` handler. */
  async handle(c: LanguageClient, params: ApplyWorkspaceEditParams, cancel: vscode.CancellationToken): Promise<ApplyWorkspaceEditResult> {
    const raw = params.edit as LspWorkspaceEdit;
    if (!needsConfirmation(raw)) {
      return this.apply(c, params.edit, fileChanges(raw) ?? []);
    }
    const plain = withoutAnnotations(raw);
    const files = fileChanges(plain) ?? [];
    let accepted: boolean;
    try {
      accepted = await this.review(params.label, files, cancel);
    } catch (error) {
      this.output.appendLine(`[lspilot] the edit preview failed: ${errorMessage(error)}`);
      return { applied: false, failureReason: `the preview could not be shown: ${errorMessage(error)}` };
    }
    const names = files.map((f) => vscode.workspace.asRelativePath(vscode.Uri.parse(f.uri), false)).join(', ');
    this.output.appendLine(`[lspilot] the change to ${names || 'the files'} was ${accepted ? 'accepted' : 'declined'} in the preview`);
    if (!accepted) {
      return { applied: false, failureReason: DECLINED };
    }
    return this.apply(c, plain as WorkspaceEdit, files);
  }

  /** Opens the diffs and waits for Accept or Reject (or the diffs closed, or the server giving up). */
  private async review(label: string | undefined, files: FileChange[], cancel: vscode.CancellationToken): Promise<boolean> {
    const what = label !== undefined && label.trim() !== '' ? label.replace(/^lspilot:\s*/i, '') : 'lspilot';
    const proposed: vscode.Uri[] = [];
    const opened: { left: vscode.Uri; right: vscode.Uri; title: string; line: number }[] = [];
    for (const file of files) {
      const uri = vscode.Uri.parse(file.uri);
      const shown = vscode.workspace.asRelativePath(uri, false);
      const name = path.basename(uri.path);
      const current = await currentText(uri);
      const before = current ?? '';
      const after = applyTextEdits(before, file.edits);
      const right = this.texts.add(shown, after);
      proposed.push(right);
      const left = current !== undefined && !file.created ? uri : this.texts.add(`${shown}.empty`, '');
      const firstEdit = file.edits.map((e) => e.range.start.line).sort((a, b) => a - b)[0] ?? 0;
      opened.push({ left, right, title: `${name} ↔ lspilot's proposed change (${what})`, line: firstEdit });
    }
    return new Promise<boolean>((resolve) => {
      let done = false;
      const review: Review = {
        proposed,
        rejectOnClose: true,
        settle: (accepted) => {
          if (done) {
            return;
          }
          done = true;
          this.reviews.delete(review);
          listening.dispose();
          this.reviewing();
          void this.close(review)
            .finally(() => resolve(accepted))
            .finally(() => {
              for (const uri of proposed) {
                this.texts.delete(uri);
              }
            });
        },
      };
      this.reviews.add(review);
      const listening = cancel.onCancellationRequested(() => review.settle(false));
      this.reviewing();
      void (async () => {
        for (const diff of opened) {
          await vscode.commands.executeCommand('vscode.diff', diff.left, diff.right, diff.title, {
            preview: false,
            selection: new vscode.Range(diff.line, 0, diff.line, 0),
          });
        }
      })().catch((error: unknown) => {
        this.output.appendLine(`[lspilot] the edit preview failed: ${errorMessage(error)}`);
        review.settle(false);
      });
    });
  }

  /** Closes the review's diff tabs. */
  private async close(review: Review): Promise<void> {
    const right = new Set(review.proposed.map((u) => u.toString()));
    const tabs = vscode.window.tabGroups.all.flatMap((group) =>
      group.tabs.filter((tab) => tab.input instanceof vscode.TabInputTextDiff && right.has(tab.input.modified.toString())),
    );
    if (tabs.length > 0) {
      await vscode.window.tabGroups.close(tabs);
    }
  }

  /**
   * Applies the edit as vscode-languageclient would (refused when an open document is no longer at
   * the version the edit was made for), then saves what it created.
   */
  private async apply(c: LanguageClient, edit: WorkspaceEdit, files: FileChange[]): Promise<ApplyWorkspaceEditResult> {
    const open = new Map(vscode.workspace.textDocuments.map((d) => [d.uri.toString(), d]));
    const cleanBefore = new Set<string>();
    for (const file of files) {
      const uri = c.protocol2CodeConverter.asUri(file.uri).toString();
      const document = open.get(uri);
      if (document !== undefined && typeof file.version === 'number' && file.version >= 0 && document.version !== file.version) {
        return { applied: false, failureReason: `${path.basename(document.uri.path)} changed since lspilot read it` };
      }
      if (document === undefined || !document.isDirty) {
        cleanBefore.add(uri);
      }
    }
    const converted = await c.protocol2CodeConverter.asWorkspaceEdit(edit);
    const applied = await vscode.workspace.applyEdit(converted);
    if (applied) {
      await this.saveCreated(c, files, cleanBefore);
    }
    return { applied };
  }

  /**
   * The server writes what it created to disk itself (to run the tests on it); the editor's copy is
   * saved too, or it would stay marked unsaved with the same text as the disk (and a later save would
   * meet "the file is newer").
   */
  private async saveCreated(c: LanguageClient, files: FileChange[], cleanBefore: Set<string>): Promise<void> {
    for (const file of files) {
      const uri = c.protocol2CodeConverter.asUri(file.uri);
      const key = uri.toString();
      if (file.created) {
        this.created.add(key);
      } else if (!this.created.has(key) || !cleanBefore.has(key)) {
        continue;
      }
      const document = vscode.workspace.textDocuments.find((d) => d.uri.toString() === key);
      if (document !== undefined && document.isDirty) {
        try {
          await document.save();
        } catch (error) {
          this.output.appendLine(`[lspilot] could not save ${document.uri.fsPath}: ${errorMessage(error)}`);
        }
      }
    }
  }

  dispose(): void {
    for (const review of [...this.reviews]) {
      review.settle(false);
    }
    for (const s of this.subscriptions.splice(0)) {
      s.dispose();
    }
  }
}

/** The text of `uri` as the editor holds it (open) or as on disk; undefined when it does not exist. */
async function currentText(uri: vscode.Uri): Promise<string | undefined> {
  const open = vscode.workspace.textDocuments.find((d) => d.uri.toString() === uri.toString());
  if (open !== undefined) {
    return open.getText();
  }
  try {
    const bytes = await vscode.workspace.fs.readFile(uri);
    return new TextDecoder('utf-8').decode(bytes);
  } catch {
    return undefined;
  }
}
