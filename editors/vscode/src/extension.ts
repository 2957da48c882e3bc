import * as vscode from 'vscode';
import { MessageActionItem, MessageType, ShowMessageRequest, WorkDoneProgressCancelNotification } from 'vscode-languageclient/node';
import { ActionTracker } from './actions';
import { ApiKeys } from './apiKey';
import { Chat } from './chat';
import { ChatCommands } from './chatCommands';
import { CHAT_VIEW, ChatView } from './chatView';
import { ActionCommands } from './commands';
import { ExplainPanel } from './explainPanel';
import { InlineCompletions } from './inline';
import { NextEdits } from './nextEdits';
import { ProgressNotifications } from './progress';
import { listen } from './protocol';
import { Runs } from './runs';
import { ServerProcess } from './serverProcess';
import { loadServerKeys } from './settings';
import { showStatus, showStatusMenu, StatusBar } from './status';

// The wiring: the server process (serverProcess.ts, with the key in apiKey.ts), the actions it runs
// (actions.ts, started by commands.ts), the chat view (chatView.ts, its turns in chat.ts, its commands
// in chatCommands.ts), ghost text (inline.ts), next edit suggestions (nextEdits.ts) and the status bar
// (status.ts). The server's commands and notifications are named and typed in protocol.ts; the runs
// of actions and chat turns are one record by token (runs.ts).

let server: ServerProcess | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  loadServerKeys(context.extension.packageJSON);
  const output = vscode.window.createOutputChannel('lspilot');
  const panel = new ExplainPanel();
  const progress = new ProgressNotifications((token) => {
    void server?.client?.sendNotification(WorkDoneProgressCancelNotification.type, { token });
  });
  const runs = new Runs();
  const tracker = new ActionTracker(runs, panel, progress);
  const keys = new ApiKeys(context, output, () => serverProcess.pushSettings());
  const inline = new InlineCompletions(output, () => serverProcess.client);
  const nextEdits = new NextEdits(output, () => serverProcess.client, () => inline.paused);
  const chatView = new ChatView();
  const serverProcess: ServerProcess = new ServerProcess(output, keys, {
    prepare: (c) => {
      listen(c, {
        onStream: (params) => {
          if (!runs.onStream(params)) {
            tracker.onForeignStream(params);
          }
        },
        onToolCall: (params) => runs.onToolCall(params),
      });
      // vscode-languageclient 9 has no middleware for window/showMessageRequest; a handler set
      // before start replaces its own (it is installed after the built-in one, on each start).
      // The agent's questions during a turn of the chat view show there too; the rest as always.
      c.onRequest(ShowMessageRequest.type, (params, token) => {
        const asked = chat.ask(params, token);
        if (asked !== undefined) {
          return asked;
        }
        const titles = params.actions ?? [];
        const show =
          params.type === MessageType.Error
            ? vscode.window.showErrorMessage
            : params.type === MessageType.Warning
              ? vscode.window.showWarningMessage
              : vscode.window.showInformationMessage;
        return show<MessageActionItem>(params.message, ...titles).then((choice) => choice ?? null);
      });
      c.registerFeature(inline.feature());
    },
    middleware: {
      executeCommand: (command, args: unknown[], next) => tracker.executeCommand(serverProcess.client, command, args, next),
      handleWorkDoneProgress: (token, params, next) => {
        // a chat turn's progress is the view's (it has Stop), not a notification
        if (runs.owns(token, 'chat') || !progress.handle(token, params)) {
          next(token, params);
        }
      },
    },
    stopped: () => progress.clear(),
    stateChanged: () => status.refresh(),
  });
  server = serverProcess;
  const chat: Chat = new Chat(serverProcess, chatView, runs);
  const chatCommands = new ChatCommands(serverProcess, chat, chatView);
  const status: StatusBar = new StatusBar(
    () => serverProcess.client,
    () => runs.count() > 0 || inline.waiting > 0,
    () => ({ paused: inline.paused, describe: inline.describe() }),
  );
  const commands = new ActionCommands(serverProcess, tracker, output);
  context.subscriptions.push(output, panel, progress, runs, tracker, keys, inline, nextEdits, status, chatView, chat, chatCommands);
  context.subscriptions.push(
    vscode.window.registerWebviewViewProvider(CHAT_VIEW, chatView, { webviewOptions: { retainContextWhenHidden: true } }),
  );

  await keys.load();

  commands.register(context.subscriptions);
  chatCommands.register(context.subscriptions);
  nextEdits.register(context.subscriptions);
  const register = (id: string, fn: () => unknown): void => {
    context.subscriptions.push(vscode.commands.registerCommand(id, fn));
  };
  register('lspilot.setApiKey', () => keys.set());
  register('lspilot.clearApiKey', () => keys.clear());
  register('lspilot.restartServer', () => serverProcess.restart());
  register('lspilot.showOutput', () => output.show(true));
  register('lspilot.statusMenu', () => showStatusMenu(status, inline.paused));
  register('lspilot.showStatus', () => showStatus(status, inline.describe()));
  register('lspilot.pauseCompletions', () => inline.setPaused(true));
  register('lspilot.resumeCompletions', () => inline.setPaused(false));
  register('lspilot.toggleCompletions', () => inline.setPaused(!inline.paused));

  context.subscriptions.push(
    runs.onDidChange(() => status.render()),
    tracker.onDidEnd(() => status.refresh()), // its usage is in the session's totals now
    chat.onDidEnd(() => status.refresh()),
    inline.onDidChange(() => status.render()),
    inline.onDidAnswer(() => status.refreshSoon()),
    vscode.workspace.onDidChangeConfiguration(async (event) => {
      if (
        event.affectsConfiguration('lspilot.serverCommand') ||
        event.affectsConfiguration('lspilot.pythonPath') ||
        event.affectsConfiguration('http.proxy')
      ) {
        await serverProcess.restart();
      } else if (event.affectsConfiguration('lspilot')) {
        status.refreshSoon(); // the model may have changed; the server reads the settings first
      }
    }),
    // Trusting the workspace lets its restricted settings (baseUrl, ...) apply.
    vscode.workspace.onDidGrantWorkspaceTrust(() => serverProcess.pushSettings()),
  );

  void serverProcess.ensure();
}

export async function deactivate(): Promise<void> {
  await server?.stop();
}
