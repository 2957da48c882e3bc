// lspilot's own protocol as this extension speaks it (docs/protocol.md): the names of the server's
// commands, notifications and requests, their argument and answer types, and typed senders. Every
// other module names them through here. No runtime import (the vscode module is not loaded): plain
// data and functions over a client passed in, so plain-Node tests can load what imports this.
import type { CancellationToken, LanguageClient } from 'vscode-languageclient/node';

/** `lspilot/stream`: one piece of an action's answer. */
export interface StreamParams {
  token: string | number;
  command: string;
  action?: string;
  uri: string;
  delta: string;
  done: boolean;
  /** Chat turns: the conversation the text belongs to. */
  conversation?: string;
}

/** What an upstream request used: token counts, and its cost when the model's price is known. */
export interface Usage {
  promptTokens: number;
  completionTokens: number;
  totalTokens?: number;
  /** US dollars; absent when the model's price is unknown. */
  cost?: number;
  /** The counts were estimated (the upstream sent none: a cancelled or cut stream). */
  estimated?: boolean;
}

/** The test run after Write tests (`tests` of an action's answer; docs/protocol.md, Tests that run). */
export interface TestsOutcome {
  /** The command as run, quoted for reading. */
  command?: string;
  passed?: number;
  failed?: number;
  rounds?: number;
  /** What the run printed (trimmed by the server). */
  output?: string;
  /** `false`: no test ran (the framework missing, an import or collection error, the command not found). */
  ran?: boolean;
  /** Why no test ran, in one line (with `ran: false`). */
  problem?: string;
}

/** What `workspace/executeCommand` answers for an lspilot action. */
export interface ActionResult {
  status: 'done' | 'cancelled' | 'failed';
  text?: string;
  usage?: Usage | null;
  error?: { type?: string; message?: string } | null;
  /** Write tests: the run of the new tests, when they ran. */
  tests?: TestsOutcome | null;
}

/** What `lspilot.chat` answers: an action's answer, and the conversation the turn belongs to. */
export interface ChatResult extends ActionResult {
  conversation?: string;
  /** Earlier turns left out of the model's history to fit `contextBudgetChars` (a `done` answer). */
  droppedTurns?: number;
  /** Agent mode: the turn's tool calls, in order. */
  steps?: { id: string; name: string; status: StepStatus }[];
  /** Agent mode: why the turn ended (`end_turn`, `max_steps`, `max_cost`). */
  stopReason?: string;
}

/** A tool call's state: `running` when it starts, then how it ended. */
export type StepStatus = 'running' | 'done' | 'failed' | 'refused';

/** `lspilot/toolCall`: an agent step started (`running`) or ended. */
export interface ToolCallParams {
  token: string | number;
  conversation?: string;
  id: string;
  name: string;
  /** The JSON text of the arguments as the model wrote it (may not be JSON at all). */
  arguments: string;
  status: StepStatus;
  /** One line: `util.py:2 (-1 +1)`, `1 passed, 0 failed`, or the failure. */
  summary?: string;
}

/** What `lspilot.chatList` `{}` answers: the kept conversations, the most recently used first. */
export interface ChatList {
  conversations: { conversation: string; title: string; updated: number; turns: number }[];
}

/** What `lspilot.chatList` `{conversation}` answers: its turns as the user saw them. */
export interface ChatShown {
  conversation: string;
  title: string;
  turns: { role: 'user' | 'assistant'; text: string }[];
}

/** What `lspilot.chatApply` answers. */
export interface ChatApplyResult {
  status: 'done' | 'failed';
  error?: { type?: string; message?: string } | null;
}

/** One configured MCP server in `lspilot.status` (`mcpServers`). */
export interface McpServerStatus {
  name: string;
  /** `stopped` (not needed yet), `starting`, `running`, `failed`, or others a newer server adds. */
  state: string;
  /** How many tools it offers (while running). */
  tools?: number;
  /** Why it failed, when it did. */
  error?: string;
}

/** Requests, tokens and cost of the session (or of one group of it). */
export interface SessionTotals {
  requests?: number;
  promptTokens?: number;
  completionTokens?: number;
  /** US dollars, or null while unknown (no price for the model). */
  cost?: number | null;
}

/** What the session's usage is split by: actions, chat (and agent) turns, ghost text, next edits. */
export type UsageGroup = 'actions' | 'chat' | 'ghostText' | 'nextEdits';

/** What `lspilot.status` answers. */
export interface ServerStatus {
  version?: string;
  model?: string;
  completionModel?: string;
  baseUrl?: string;
  apiKeySet?: boolean;
  running?: { token: string | number; action?: string; uri?: string }[];
  session?: SessionTotals & {
    /** The totals by what asked (contract 2 of issue 28): always all four when present. */
    groups?: Partial<Record<UsageGroup, SessionTotals>>;
  };
  mcpServers?: McpServerStatus[];
}

/** An item of a `textDocument/inlineCompletion` answer (LSP 3.18). */
export interface InlineCompletionItem {
  insertText: string | { kind?: string; value: string };
  filterText?: string;
  range?: { start: { line: number; character: number }; end: { line: number; character: number } };
}

export type InlineCompletionResult = { items: InlineCompletionItem[] } | InlineCompletionItem[] | null;

/** A position and a range as LSP sends them. */
export interface Position {
  line: number;
  character: number;
}
export interface Range {
  start: Position;
  end: Position;
}

/** `textDocument/copilotInlineEdit`'s params. */
export interface InlineEditParams {
  textDocument: { uri: string; version: number };
  position: Position;
}

/** One suggested edit: `newText` replaces `range` in the document at `textDocument.version`. */
export interface InlineEdit {
  text: string;
  newText?: string;
  range: Range;
  textDocument: { uri: string; version: number };
}

/** `textDocument/copilotInlineEdit`'s answer. */
export interface InlineEditResult {
  edits: InlineEdit[];
}

/** The arguments of an action on a selection (`lspilot.explain`, `.refactor`, `.writeTests`, `.run`). */
export interface ActionArgs {
  uri: string;
  range: Range;
  instruction?: string;
  action?: string;
  [key: string]: unknown;
}

/** `lspilot.chat`'s argument. */
export interface ChatArgs {
  message: string;
  mode?: 'agent';
  conversation?: string;
  uri?: string;
  range?: Range;
}

/** `lspilot.chatApply`'s argument. */
export interface ChatApplyArgs {
  conversation: string;
  turn?: number;
  block: number;
  uri: string;
  range: Range;
  version: number;
}

/** The server's commands (`workspace/executeCommand`): each one's argument and answer. */
export interface Commands {
  'lspilot.explain': { args: ActionArgs; result: ActionResult };
  'lspilot.refactor': { args: ActionArgs; result: ActionResult };
  'lspilot.writeTests': { args: ActionArgs; result: ActionResult };
  'lspilot.run': { args: ActionArgs; result: ActionResult };
  'lspilot.chat': { args: ChatArgs; result: ChatResult };
  'lspilot.chatList': { args: Record<string, never> | { conversation: string }; result: ChatList | ChatShown };
  'lspilot.chatReset': { args: { conversation: string }; result: unknown };
  'lspilot.chatApply': { args: ChatApplyArgs; result: ChatApplyResult };
  /** `{}` cancels every run; `{token}` one. */
  'lspilot.cancel': { args: { token?: string | number }; result: { cancelled?: unknown[] } | null };
  'lspilot.status': { args: undefined; result: ServerStatus };
}

export type CommandName = keyof Commands;

/** The server's action commands, by name (what a selection's action runs). */
export const ACTION_COMMANDS = ['lspilot.explain', 'lspilot.refactor', 'lspilot.writeTests', 'lspilot.run'] as const;
export type ActionCommand = (typeof ACTION_COMMANDS)[number];

/** Notifications and requests of lspilot's own (and Copilot's NES method, which lspilot answers). */
export const STREAM = 'lspilot/stream';
export const TOOL_CALL = 'lspilot/toolCall';
export const COPILOT_INLINE_EDIT = 'textDocument/copilotInlineEdit';
const EXECUTE_COMMAND = 'workspace/executeCommand';

/**
 * Runs one of the server's commands: `args` is its one argument (none for `lspilot.status`),
 * `workDoneToken` pairs its progress and `lspilot/stream` text, `cancel` sends `$/cancelRequest`.
 */
export async function execute<K extends CommandName>(
  c: LanguageClient,
  command: K,
  args: Commands[K]['args'],
  options: { workDoneToken?: string; cancel?: CancellationToken; rawArguments?: unknown[] } = {},
): Promise<Commands[K]['result'] | null> {
  const params: { command: string; arguments?: unknown[]; workDoneToken?: string } = { command };
  const rawArguments = options.rawArguments ?? (args === undefined ? undefined : [args]);
  if (rawArguments !== undefined) {
    params.arguments = rawArguments;
  }
  if (options.workDoneToken !== undefined) {
    params.workDoneToken = options.workDoneToken;
  }
  type Answer = Commands[K]['result'] | null;
  return options.cancel !== undefined
    ? c.sendRequest<Answer>(EXECUTE_COMMAND, params, options.cancel)
    : c.sendRequest<Answer>(EXECUTE_COMMAND, params);
}

/** `textDocument/copilotInlineEdit`; `{edits: []}` for an answer without edits. */
export async function copilotInlineEdit(c: LanguageClient, params: InlineEditParams, cancel: CancellationToken): Promise<InlineEditResult> {
  const answer = await c.sendRequest<InlineEditResult | null>(COPILOT_INLINE_EDIT, params, cancel);
  return { edits: Array.isArray(answer?.edits) ? answer.edits : [] };
}

/** The server's notifications to this extension. */
export interface Notifications {
  onStream(params: StreamParams): void;
  onToolCall(params: ToolCallParams): void;
}

/** Routes `lspilot/stream` and `lspilot/toolCall` to `handler` (set before the client starts). */
export function listen(c: LanguageClient, handler: Notifications): void {
  c.onNotification(STREAM, (params: StreamParams) => handler.onStream(params));
  c.onNotification(TOOL_CALL, (params: ToolCallParams) => handler.onToolCall(params));
}

/** Whether the server's `initialize` answer offers next edit suggestions. */
export function offersInlineEdits(capabilities: { experimental?: unknown } | undefined): boolean {
  const experimental = capabilities?.experimental;
  return typeof experimental === 'object' && experimental !== null && (experimental as { copilotInlineEdit?: unknown }).copilotInlineEdit === true;
}
