import * as vscode from 'vscode';
import { ACTIONS, ActionSpec, ActionTracker, CustomAction, customActions } from './actions';
import { errorMessage } from './errors';
import { ActionArgs, execute } from './protocol';
import { ServerProcess } from './serverProcess';

/** The commands that run actions on the selection, and cancel them. */
export class ActionCommands {
  constructor(
    private readonly server: ServerProcess,
    private readonly tracker: ActionTracker,
    private readonly output: vscode.OutputChannel,
  ) {}

  register(subscriptions: vscode.Disposable[]): void {
    const register = (id: string, fn: () => unknown): void => {
      subscriptions.push(vscode.commands.registerCommand(id, fn));
    };
    register('lspilot.explainSelection', () => this.run(ACTIONS['lspilot.explain']));
    register('lspilot.refactorSelection', () => this.run(ACTIONS['lspilot.refactor']));
    register('lspilot.writeTestsSelection', () => this.run(ACTIONS['lspilot.writeTests']));
    register('lspilot.refactorWithInstruction', () => this.refactorWithInstruction());
    register('lspilot.runCustomAction', () => this.runCustomAction());
    register('lspilot.showActions', () => this.showActions());
    register('lspilot.cancelAll', () => this.cancelAll());
  }

  async run(spec: ActionSpec): Promise<void> {
    const editor = vscode.window.activeTextEditor;
    if (editor === undefined) {
      void vscode.window.showWarningMessage('lspilot: open a file and select some code first.');
      return;
    }
    const c = await this.server.ensure();
    if (c === undefined) {
      return;
    }
    const range = targetRange(editor);
    if (range.isEmpty) {
      void vscode.window.showWarningMessage(`lspilot: select the code to ${spec.title.toLowerCase()} first.`);
      return;
    }
    const args: ActionArgs = {
      uri: c.code2ProtocolConverter.asUri(editor.document.uri),
      range: c.code2ProtocolConverter.asRange(range),
    };
    if (spec.instruction !== undefined) {
      args.instruction = spec.instruction;
    }
    if (spec.action !== undefined) {
      args.action = spec.action;
    }
    await this.tracker.execute(c, spec, args);
  }

  async cancelAll(): Promise<void> {
    const c = this.server.client;
    if (c === undefined) {
      return;
    }
    try {
      await execute(c, 'lspilot.cancel', {});
    } catch (error) {
      this.output.appendLine(`[lspilot] cancel failed: ${errorMessage(error)}`);
    }
  }

  private async refactorWithInstruction(): Promise<void> {
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
    await this.run({ ...ACTIONS['lspilot.refactor'], instruction: instruction.trim() });
  }

  private runCustom(action: CustomAction): Promise<void> {
    return this.run({ ...ACTIONS['lspilot.run'], title: action.title, show: action.apply === 'show', action: action.id });
  }

  private async runCustomAction(): Promise<void> {
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
      await this.runCustom(picked.action);
    }
  }

  private async showActions(): Promise<void> {
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
        items.push({ label: action.title, description: action.apply, run: () => this.runCustom(action) });
      }
    }
    items.push({ label: '', kind: vscode.QuickPickItemKind.Separator });
    items.push({ label: '$(stop-circle) Cancel running actions', run: () => this.cancelAll() });
    const picked = await vscode.window.showQuickPick(items, { title: 'lspilot', placeHolder: 'Action for the selection' });
    await picked?.run?.();
  }
}

/** The selection, or the cursor's line when nothing is selected. */
function targetRange(editor: vscode.TextEditor): vscode.Range {
  const selection = editor.selection;
  if (!selection.isEmpty) {
    return new vscode.Range(selection.start, selection.end);
  }
  return editor.document.lineAt(selection.active.line).range;
}
