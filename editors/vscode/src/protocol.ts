// The shapes lspilot's server sends this extension (docs/protocol.md). No vscode import: plain data.

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

/** What `workspace/executeCommand` answers for an lspilot action. */
export interface ActionResult {
  status: 'done' | 'cancelled' | 'failed';
  text?: string;
  usage?: Usage | null;
  error?: { type?: string; message?: string } | null;
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

/** What `lspilot.status` answers. */
export interface ServerStatus {
  version?: string;
  model?: string;
  completionModel?: string;
  baseUrl?: string;
  apiKeySet?: boolean;
  running?: { token: string | number; action?: string; uri?: string }[];
  session?: {
    requests?: number;
    promptTokens?: number;
    completionTokens?: number;
    /** US dollars, or null while no request with a known price was made. */
    cost?: number | null;
  };
}

/** An item of a `textDocument/inlineCompletion` answer (LSP 3.18). */
export interface InlineCompletionItem {
  insertText: string | { kind?: string; value: string };
  filterText?: string;
  range?: { start: { line: number; character: number }; end: { line: number; character: number } };
}

export type InlineCompletionResult = { items: InlineCompletionItem[] } | InlineCompletionItem[] | null;
