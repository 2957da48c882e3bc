import * as path from 'path';
import * as vscode from 'vscode';
import { LanguageClient } from 'vscode-languageclient/node';
import { AgentFiles } from './agentFiles';
import { Chat, ChatContext, LAST_ANSWER } from './chat';
import { BlockAction, ChatView, StepAction } from './chatView';
import { errorMessage } from './errors';
import { rangeLabel } from './explainPanel';
import { ChatList, execute } from './protocol';
import { ServerProcess } from './serverProcess';

/**
 * The chat's commands and what the view's buttons do with the editor: what a message is about (the
 * editor's selection, or its file), Ask lspilot about this, Open conversation… (the kept ones, from
 * `lspilot.chatList`), and a code block applied (`lspilot.chatApply` at the document's version),
 * inserted or copied.
 */
export class ChatCommands implements vscode.Disposable {
  /** The text editor the user was last in: a click in the view leaves it active, a panel may not. */
  private lastEditor: vscode.TextEditor | undefined = vscode.window.activeTextEditor;
  private contextTimer: NodeJS.Timeout | undefined;
  private readonly subscriptions: vscode.Disposable[] = [];
  private readonly files = new AgentFiles();

  constructor(
    private readonly server: ServerProcess,
    private readonly chat: Chat,
    private readonly view: ChatView,
  ) {
    this.subscriptions.push(
      view.onDidSend(({ text, withContext, mode }) => void this.chat.send(text, withContext ? this.editorContext() : undefined, mode)),
      view.onDidStep((action) => void this.step(action)),
      view.onDidStop(() => void this.chat.stop()),
      view.onDidAct((action) => void this.act(action)),
      vscode.window.onDidChangeActiveTextEditor((editor) => {
        if (editor !== undefined) {
          this.lastEditor = editor;
        }
        this.contextChanged();
      }),
      vscode.window.onDidChangeTextEditorSelection(() => this.contextChanged()),
      vscode.window.onDidChangeVisibleTextEditors(() => this.contextChanged()),
    );
    this.view.setContext(this.editorContext()?.label);
  }

  register(subscriptions: vscode.Disposable[]): void {
    const register = (id: string, fn: () => unknown): void => {
      subscriptions.push(vscode.commands.registerCommand(id, fn));
    };
    register('lspilot.openChat', () => this.view.reveal());
    register('lspilot.askAboutSelection', () => this.askAboutSelection());
    register('lspilot.newChat', async () => {
      this.chat.newConversation();
      await this.view.reveal();
    });
    register('lspilot.openConversation', () => this.openConversation());
    register('lspilot.stopChat', () => this.chat.stop());
  }

  /** The editor a message or a code block is for: the active one, else the one the user was last in. */
  private editor(): vscode.TextEditor | undefined {
    const active = vscode.window.activeTextEditor;
    if (active !== undefined) {
      return active;
    }
    const last = this.lastEditor;
    return last !== undefined && vscode.window.visibleTextEditors.includes(last) ? last : undefined;
  }

  /** The editor's selection (its file when nothing is selected), as a message's context. */
  private editorContext(): ChatContext | undefined {
    const editor = this.editor();
    if (editor === undefined || !['file', 'untitled'].includes(editor.document.uri.scheme)) {
      return undefined;
    }
    const uri = editor.document.uri;
    const selection = editor.selection;
    if (selection.isEmpty) {
      return { uri, label: path.basename(uri.path) };
    }
    const range = new vscode.Range(selection.start, selection.end);
    return { uri, range, label: rangeLabel(uri, range) };
  }

  private contextChanged(): void {
    if (this.contextTimer === undefined) {
      this.contextTimer = setTimeout(() => {
        this.contextTimer = undefined;
        this.view.setContext(this.editorContext()?.label);
      }, 100);
    }
  }

  private async askAboutSelection(): Promise<void> {
    const context = this.editorContext();
    if (context === undefined) {
      void vscode.window.showWarningMessage('lspilot: open a file and select some code first.');
      return;
    }
    const question = await vscode.window.showInputBox({
      title: `lspilot: Ask about ${context.label}`,
      prompt: 'Your question about the code (the answer streams into the lspilot chat view)',
      placeHolder: 'e.g. why does this fail for an empty list?',
      ignoreFocusOut: true,
    });
    if (question === undefined || question.trim() === '') {
      return;
    }
    await this.view.reveal();
    await this.chat.send(question.trim(), context);
  }

  private async openConversation(): Promise<void> {
    const c = await this.server.ensure();
    if (c === undefined) {
      return;
    }
    let list: ChatList;
    try {
      list = (await execute(c, 'lspilot.chatList', {})) as ChatList;
    } catch (error) {
      void vscode.window.showErrorMessage(`lspilot: Open conversation: ${errorMessage(error)}`);
      return;
    }
    if (list.conversations.length === 0) {
      void vscode.window.showInformationMessage('lspilot: no conversations kept yet.');
      return;
    }
    type Item = vscode.QuickPickItem & { conversation: string };
    const forget: vscode.QuickInputButton = { iconPath: new vscode.ThemeIcon('trash'), tooltip: 'Forget this conversation' };
    const pick = vscode.window.createQuickPick<Item>();
    pick.title = 'lspilot: Open conversation';
    pick.placeholder = 'A kept conversation to show again in the chat view (the newest first)';
    const exchanges = (turns: number): string => {
      const n = Math.ceil(turns / 2);
      return `${n} exchange${n === 1 ? '' : 's'}`;
    };
    pick.items = list.conversations.map((conversation) => ({
      label: conversation.title || conversation.conversation,
      description: exchanges(conversation.turns),
      detail: new Date(conversation.updated * 1000).toLocaleString(),
      conversation: conversation.conversation,
      buttons: [forget],
    }));
    const picked = await new Promise<Item | undefined>((resolve) => {
      pick.onDidTriggerItemButton(async ({ item }) => {
        await this.forget(c, item.conversation);
        pick.items = pick.items.filter((other) => other !== item);
      });
      pick.onDidAccept(() => resolve(pick.selectedItems[0]));
      pick.onDidHide(() => resolve(undefined));
      pick.show();
    });
    pick.dispose();
    if (picked === undefined) {
      return;
    }
    try {
      await this.chat.reopen(c, picked.conversation);
    } catch (error) {
      void vscode.window.showErrorMessage(`lspilot: Open conversation: ${errorMessage(error)}`);
      return;
    }
    await this.view.reveal();
  }

  private async forget(c: LanguageClient, conversation: string): Promise<void> {
    try {
      await execute(c, 'lspilot.chatReset', { conversation });
      this.chat.forgotten(conversation);
    } catch (error) {
      void vscode.window.showErrorMessage(`lspilot: Forget conversation: ${errorMessage(error)}`);
    }
  }

  /** A step's question answered in the view, its file opened, or its proposed edit shown as a diff. */
  private async step(action: StepAction): Promise<void> {
    switch (action.kind) {
      case 'answer':
        this.chat.answer(action.step, action.choice);
        return;
      case 'open':
        await this.files.open(action.step);
        return;
      case 'diff':
        await this.files.diff(action.step);
        return;
    }
  }

  private async act(action: BlockAction): Promise<void> {
    if (action.kind === 'copy') {
      await vscode.env.clipboard.writeText(action.code);
      vscode.window.setStatusBarMessage('lspilot: code copied', 3000);
      this.view.blockResult(action, { ok: true, label: 'Copied', detail: 'Copied to the clipboard' });
      return;
    }
    const what = action.kind === 'apply' ? 'Apply to selection' : 'Insert at cursor';
    const notApplied = (why: string, warn = false): void => {
      this.view.blockResult(action, { ok: false, label: action.kind === 'apply' ? 'Not applied' : 'Not inserted', detail: why });
      const show = warn ? vscode.window.showWarningMessage : vscode.window.showErrorMessage;
      void show(`lspilot: ${what}: nothing changed. ${why}`);
    };
    const editor = this.editor();
    const conversation = this.chat.conversationId;
    if (editor === undefined) {
      notApplied('Open the file the code is for first (and select what it replaces).', true);
      return;
    }
    const c = await this.server.ensure();
    if (c === undefined || conversation === undefined) {
      return; // the server could not start (it said why), or the answer is of no kept conversation
    }
    const selection = editor.selection;
    const range = action.kind === 'apply' ? new vscode.Range(selection.start, selection.end) : new vscode.Range(selection.active, selection.active);
    const document = editor.document;
    try {
      const result = await execute(c, 'lspilot.chatApply', {
        conversation,
        // an answer after an agent turn: the server's last one (see Chat.forgetLastAnswer)
        ...(action.answer === LAST_ANSWER ? {} : { turn: action.answer }),
        block: action.block,
        uri: c.code2ProtocolConverter.asUri(document.uri),
        range: c.code2ProtocolConverter.asRange(range),
        version: document.version,
      });
      if (result?.status === 'done') {
        const where = blockLines(document.uri, range.start.line, action.code);
        const done = action.kind === 'apply' ? `Applied to ${where}` : `Inserted at ${where}`;
        vscode.window.setStatusBarMessage(`lspilot: ${done}`, 8000);
        this.view.blockResult(action, { ok: true, label: action.kind === 'apply' ? 'Applied ✓' : 'Inserted ✓', detail: done });
      } else if (result?.error?.type === 'declined') {
        this.view.blockResult(action, { ok: false, label: 'Not applied', detail: 'You declined it.' });
        void vscode.window.showInformationMessage(`lspilot: ${what}: not applied: you declined it.`);
      } else {
        notApplied(result?.error?.message ?? 'The server gave no reason.');
      }
    } catch (error) {
      notApplied(errorMessage(error));
    }
  }

  dispose(): void {
    if (this.contextTimer !== undefined) {
      clearTimeout(this.contextTimer);
    }
    this.files.dispose();
    for (const subscription of this.subscriptions) {
      subscription.dispose();
    }
  }
}

/** `calc.py:4-6`: the lines `code` takes once put at 0-based line `start` of the document. */
export function blockLines(uri: vscode.Uri, start: number, code: string): string {
  const lines = Math.max(1, code.replace(/\n+$/, '').split('\n').length);
  const first = start + 1;
  const last = first + lines - 1;
  return `${path.basename(uri.path)}:${first === last ? first : `${first}-${last}`}`;
}
