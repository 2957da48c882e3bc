import * as crypto from 'crypto';
import * as vscode from 'vscode';
import {
  LanguageClient,
  ProgressToken,
  WorkDoneProgress,
  WorkDoneProgressBegin,
  WorkDoneProgressEnd,
  WorkDoneProgressReport,
} from 'vscode-languageclient/node';
import type { Notifications, StreamParams, ToolCallParams } from './protocol';
import { Recent } from './recent';

/** What started a run: an action (its panel, notification and outcome) or a chat turn (the view). */
export type RunKind = 'action' | 'chat';

/** A request of this extension under a work-done token of its own, from its start until it answers. */
export interface Run {
  readonly token: string;
  readonly kind: RunKind;
  /** The message of its progress `end`: the outcome, with tokens and seconds. */
  endMessage?: string;
  /** Its `lspilot/stream` text. */
  onStream(params: StreamParams): void;
  /** Its `lspilot/toolCall` (agent turns). */
  onToolCall?(params: ToolCallParams): void;
  /** Its `$/progress`, after `endMessage` is recorded. */
  onProgress?(params: WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd): void;
}

/**
 * The one record of this extension's runs by token, shared by the actions and the chat: a token is
 * minted per run, and pairs the run's `lspilot/stream` text, `lspilot/toolCall` steps and `$/progress`
 * with it. An entry lives exactly as long as its request; tokens of ended runs are remembered (a
 * bounded number) so that a late notification for one is dropped, not taken for someone else's.
 */
export class Runs implements vscode.Disposable, Notifications {
  private readonly live = new Map<string, Run>();
  private readonly endedTokens = new Recent<string, true>(256);
  private readonly changed = new vscode.EventEmitter<void>();
  /** Fires when a run starts or ends. */
  readonly onDidChange = this.changed.event;

  /** A fresh token for a run of `kind`. */
  static token(kind: RunKind): string {
    return kind === 'chat' ? `lspilot-vscode-chat-${crypto.randomUUID()}` : `lspilot-vscode-${crypto.randomUUID()}`;
  }

  /** How many runs (of `kind`) are in flight. */
  count(kind?: RunKind): number {
    let n = 0;
    for (const run of this.live.values()) {
      if (kind === undefined || run.kind === kind) {
        n++;
      }
    }
    return n;
  }

  /** Whether `token` is a run (of `kind`) in flight. */
  owns(token: ProgressToken, kind?: RunKind): boolean {
    const run = this.live.get(String(token));
    return run !== undefined && (kind === undefined || run.kind === kind);
  }

  has(token: string): boolean {
    return this.live.has(token);
  }

  /** The runs of `kind` in flight (R: the kind's own run type). */
  list<R extends Run>(kind: R['kind']): R[] {
    return [...this.live.values()].filter((run) => run.kind === kind) as R[];
  }

  /** `token` has ended (a run started elsewhere, told by its last piece): its late notifications are dropped. */
  markEnded(token: string): void {
    this.endedTokens.set(token, true);
  }

  ended(token: string): boolean {
    return this.endedTokens.has(token);
  }

  /**
   * Runs `send` as `run`: the run is in the record, and its progress followed, until `send` settles
   * (however it settles).
   */
  async track<T>(c: LanguageClient, run: Run, send: () => Promise<T>): Promise<T> {
    this.live.set(run.token, run);
    this.changed.fire();
    const listening = c.onProgress(WorkDoneProgress.type, run.token, (params) => {
      if (params.kind === 'end') {
        run.endMessage = params.message;
      }
      run.onProgress?.(params);
    });
    try {
      return await send();
    } finally {
      this.live.delete(run.token);
      this.endedTokens.set(run.token, true);
      listening.dispose();
      this.changed.fire();
    }
  }

  /** `lspilot/stream`: true when it was a run's of this extension (in flight, or a late piece of an ended one). */
  onStream(params: StreamParams): boolean {
    const key = String(params.token);
    const run = this.live.get(key);
    if (run !== undefined) {
      run.onStream(params);
      return true;
    }
    return this.endedTokens.has(key);
  }

  /** `lspilot/toolCall`: true when it was a run's of this extension. */
  onToolCall(params: ToolCallParams): boolean {
    const key = String(params.token);
    const run = this.live.get(key);
    if (run !== undefined) {
      run.onToolCall?.(params);
      return true;
    }
    return this.endedTokens.has(key);
  }

  dispose(): void {
    this.changed.dispose();
  }
}
