import * as vscode from 'vscode';
import {
  ApplyWorkspaceEditRequest,
  MessageActionItem,
  MessageType,
  ShowMessageNotification,
  ShowMessageRequest,
  WorkDoneProgressCancelNotification,
} from 'vscode-languageclient/node';
import { ActionTracker } from './actions';
import { AgentFiles } from './agentFiles';
import { ApiKeys } from './apiKey';
import { Chat } from './chat';
import { ChatCommands } from './chatCommands';
import { CHAT_VIEW, ChatView } from './chatView';
import { ActionCommands } from './commands';
import { EditPreview, ProposedTexts } from './editPreview';
import { isKeyProblem } from './errors';
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
// of actions and chat turns are one record by token (runs.ts). Every workspace/applyEdit goes
// through lspilot's own edit preview (editPreview.ts: a diff with Accept / Reject when the edit asks
// for confirmation).

let server: ServerProcess | undefined;

export async function activate(context: vscode.ExtensionContext): Promise<void> {
  loadServerKeys(context.extension.packageJSON);
  const output = vscode.window.createOutputChannel('lspilot');
  const panel = new ExplainPanel();
  const progress = new ProgressNotifications((token) => {
    void server?.client?.sendNotification(WorkDoneProgressCancelNotification.type, { token });
  });
  const runs = new Runs();
  const preview = new EditPreview(output);
  const tracker = new ActionTracker(runs, panel, progress, output);
  const keys = new ApiKeys(context, output, async () => {
    await serverProcess.pushSettings();
    status.refreshSoon(); // the status item's warning about a missing key
  });
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
      // Installed after vscode-languageclient's own handler (pending handlers replace it on start):
      // lspilot's edit preview instead of VS Code's Refactor Preview (editPreview.ts).
      c.onRequest(ApplyWorkspaceEditRequest.type, (params, token) => preview.handle(c, params, token));
      // The server's messages as vscode-languageclient shows them, plus a "Set API key…" button on
      // those saying the key is missing or refused.
      c.onNotification(ShowMessageNotification.type, (params) => showServerMessage(params.type, params.message));
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
  // An agent step's Show diff, while its question is open, gets Accept (Allow) and Reject (Deny).
  AgentFiles.onDiff = (step, proposed) => {
    if (step.approval !== undefined && step.approval.answered === undefined && step.approval.actions.length > 0) {
      const actions = step.approval.actions;
      preview.watch(proposed, (accepted) => {
        if (step.approval?.answered === undefined) {
          chat.answer(step, accepted ? (actions.find((a) => a === 'Allow') ?? actions[0]) : (actions.find((a) => a === 'Deny') ?? actions[actions.length - 1]));
        }
      });
    }
  };
  context.subscriptions.push(ProposedTexts.shared(), preview, output, panel, progress, runs, tracker, keys, inline, nextEdits, status, chatView, chat, chatCommands);
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

/** A server's `window/showMessage`; one about the key gets "Set API key…" (the command, secret storage). */
function showServerMessage(type: MessageType, message: string): void {
  const show =
    type === MessageType.Error
      ? vscode.window.showErrorMessage
      : type === MessageType.Warning
        ? vscode.window.showWarningMessage
        : vscode.window.showInformationMessage;
  if ((type === MessageType.Error || type === MessageType.Warning) && isKeyProblem(message)) {
    void show(message, SET_KEY).then((choice) => {
      if (choice === SET_KEY) {
        void vscode.commands.executeCommand('lspilot.setApiKey');
      }
    });
    return;
  }
  void show(message);
}

const SET_KEY = 'Set API key…';

export async function deactivate(): Promise<void> {
  await server?.stop();
}
