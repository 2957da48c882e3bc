import * as path from 'path';
import * as vscode from 'vscode';
import { parseArguments, proposedEdit, StepTarget, stepTarget, StepView } from './agentSteps';
import { ProposedTexts } from './editPreview';

const text = (value: unknown): string => (typeof value === 'string' ? value : '');

/**
 * What a step's link and Show diff open: the step's file at its lines, and VS Code's diff editor of
 * the file as the editor holds it against the text the pending edit would make (computed here from
 * the step's `old`/`new`, as the server applies it: the one occurrence of `old`).
 */
export class AgentFiles implements vscode.Disposable {
  /** Called with each Show diff's step and the proposed side (extension.ts: Accept / Reject while it is asked about). */
  static onDiff: ((step: StepView, proposed: vscode.Uri) => void) | undefined;

  /** The proposed texts (one provider of the `lspilot-proposed` scheme, shared with the edit preview). */
  private readonly texts = ProposedTexts.shared();

  /** The file the model named: relative paths are inside the first workspace folder, as the server resolves them. */
  uriOf(given: string): vscode.Uri | undefined {
    if (path.isAbsolute(given)) {
      return vscode.Uri.file(given);
    }
    const root = vscode.workspace.workspaceFolders?.[0]?.uri;
    return root === undefined ? undefined : vscode.Uri.joinPath(root, ...given.split(/[\\/]+/).filter((p) => p !== '' && p !== '.'));
  }

  /** Opens the step's file, its lines selected (for a running edit: the lines its `old` spans now). */
  async open(step: StepView): Promise<void> {
    const target = stepTarget(step);
    const uri = target === undefined ? undefined : this.uriOf(target.path);
    if (target === undefined || uri === undefined) {
      return;
    }
    let document: vscode.TextDocument;
    try {
      document = await vscode.workspace.openTextDocument(uri);
    } catch (error) {
      void vscode.window.showWarningMessage(`lspilot: cannot open ${target.path}: ${String(error)}`);
      return;
    }
    const lines = this.linesOf(step, target, document);
    const options: vscode.TextDocumentShowOptions = { preview: false, viewColumn: vscode.ViewColumn.One };
    if (lines !== undefined) {
      const last = Math.min(document.lineCount, lines.endLine) - 1;
      const first = Math.min(Math.max(lines.startLine - 1, 0), Math.max(last, 0));
      options.selection = new vscode.Range(first, 0, Math.max(first, last), document.lineAt(Math.max(first, last)).text.length);
    }
    await vscode.window.showTextDocument(document, options);
  }

  /** VS Code's diff editor: the file (as the editor holds it) against the proposed text. */
  async diff(step: StepView): Promise<void> {
    const args = parseArguments(step.arguments);
    const given = typeof args?.path === 'string' ? args.path : undefined;
    const uri = given === undefined ? undefined : this.uriOf(given);
    if (args === undefined || given === undefined || uri === undefined) {
      void vscode.window.showWarningMessage('lspilot: this step names no file to show a diff of.');
      return;
    }
    const name = path.basename(given);
    if (step.name === 'create_file') {
      const empty = this.texts.add(given, '');
      const proposed = this.texts.add(given, typeof args.content === 'string' ? args.content : '');
      AgentFiles.onDiff?.(step, proposed);
      await vscode.commands.executeCommand('vscode.diff', empty, proposed, `${name} (new file proposed by lspilot's agent)`, { preview: true });
      return;
    }
    let document: vscode.TextDocument;
    try {
      document = await vscode.workspace.openTextDocument(uri);
    } catch (error) {
      void vscode.window.showWarningMessage(`lspilot: cannot open ${given}: ${String(error)}`);
      return;
    }
    const edit = proposedEdit(document.getText(), text(args.old), text(args.new));
    if ('error' in edit) {
      void vscode.window.showWarningMessage(`lspilot: no diff for ${given}: ${edit.error}.`);
      return;
    }
    const proposed = this.texts.add(given, edit.text);
    AgentFiles.onDiff?.(step, proposed);
    await vscode.commands.executeCommand('vscode.diff', document.uri, proposed, `${name} ↔ proposed by lspilot's agent`, {
      preview: true,
      selection: new vscode.Range(edit.startLine - 1, 0, edit.startLine - 1, 0),
    });
  }

  private linesOf(step: StepView, target: StepTarget, document: vscode.TextDocument): { startLine: number; endLine: number } | undefined {
    if (target.startLine !== undefined) {
      return { startLine: target.startLine, endLine: target.endLine ?? target.startLine };
    }
    if (step.name === 'edit_file' && step.status !== 'done') {
      const args = parseArguments(step.arguments);
      const edit = proposedEdit(document.getText(), text(args?.old), text(args?.new));
      return 'error' in edit ? undefined : { startLine: edit.startLine, endLine: edit.endLine };
    }
    return undefined;
  }

  dispose(): void {
    // the shared provider is the extension's (extension.ts disposes it)
  }
}
