import * as vscode from 'vscode';
import {
  ProgressToken,
  WorkDoneProgressBegin,
  WorkDoneProgressEnd,
  WorkDoneProgressReport,
} from 'vscode-languageclient/node';

type Params = WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd;

/** After a review, Cancel comes back this much later, unless the run ended meanwhile. */
const CANCEL_AGAIN_MS = 1500;

interface Running {
  token: ProgressToken;
  title: string;
  progress?: vscode.Progress<{ message?: string; increment?: number }>;
  /** Ends the notification shown now. */
  finish: () => void;
  /** Whether the notification shown now has Cancel. */
  cancellable: boolean;
  reported: number;
  message?: string;
  /** Cancel comes back (a review ended) when this timer fires. */
  again?: NodeJS.Timeout;
  pending: (WorkDoneProgressBegin | WorkDoneProgressReport)[];
}

/**
 * Shows the server's work-done progress as a VS Code progress notification with a Cancel button.
 *
 * vscode-languageclient renders server progress in the status bar, where it cannot be cancelled;
 * lspilot's actions are long and cancellable, so they get a notification instead. Cancel sends
 * `window/workDoneProgress/cancel` for the token, which the server turns into a stop. The server's
 * messages show as sent (`Asking the model…`, `Writing the answer… 230 chars`, `Running the tests…`).
 *
 * A report may say `cancellable: false` (`Waiting for your review…` while lspilot's edit preview is
 * open) and later `true` again. A VS Code progress notification keeps the Cancel button it was
 * created with, so the notification is replaced by one without Cancel (same title, the message so
 * far), and by one with Cancel again when the server says so: the user never sees a Cancel that
 * would do nothing, and never loses one that works.
 */
export class ProgressNotifications implements vscode.Disposable {
  private readonly running = new Map<string, Running>();

  constructor(private readonly cancel: (token: ProgressToken) => void) {}

  /** `middleware.handleWorkDoneProgress`: returns true when it took the message over. */
  handle(token: ProgressToken, params: Params): boolean {
    const key = String(token);
    switch (params.kind) {
      case 'begin':
        this.begin(key, token, params);
        return true;
      case 'report': {
        const run = this.running.get(key);
        if (run === undefined) {
          return false;
        }
        if (typeof params.cancellable === 'boolean') {
          this.cancellable(run, params.cancellable);
        }
        if (run.progress === undefined) {
          run.pending.push(params);
        } else {
          this.report(run, params);
        }
        return true;
      }
      case 'end': {
        const run = this.running.get(key);
        if (run === undefined) {
          return false;
        }
        // The outcome is not reported into the notification: it would sit there, under a Cancel
        // button, on an action that has ended. The caller shows it (the status bar).
        this.running.delete(key);
        clearTimeout(run.again);
        run.finish();
        return false; // let the client clean up its own bookkeeping for the token
      }
    }
  }

  private begin(key: string, token: ProgressToken, params: WorkDoneProgressBegin): void {
    if (this.running.has(key)) {
      return; // one notification a token, however often its begin is handed over
    }
    const title = params.title.toLowerCase().startsWith('lspilot') ? params.title : `lspilot: ${params.title}`;
    const run: Running = { token, title, finish: () => undefined, cancellable: params.cancellable === true, reported: 0, pending: [params] };
    this.running.set(key, run);
    this.show(run);
  }

  /** Opens the run's notification (with Cancel when `run.cancellable`); `finish` ends it. */
  private show(run: Running): void {
    let finish: () => void = () => undefined;
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    run.finish = () => finish();
    run.progress = undefined;
    void vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title: run.title, cancellable: run.cancellable },
      (progress, cancellation) => {
        run.progress = progress;
        const sub = cancellation.onCancellationRequested(() => {
          progress.report({ message: 'cancelling…' });
          this.cancel(run.token);
        });
        if (run.message !== undefined) {
          progress.report({ message: run.message });
        }
        for (const pending of run.pending.splice(0)) {
          this.report(run, pending);
        }
        return done.finally(() => {
          sub.dispose();
        });
      },
    );
  }

  /**
   * The server says whether Cancel works now. Without Cancel: the notification is replaced at once.
   * With Cancel again: after a moment, and not at all when the run ends first (a review is usually
   * the last thing an action waits for: a notification opened to be closed at once only flickers,
   * and VS Code drops toasts that come too many at once, the action's end message among them).
   */
  private cancellable(run: Running, cancellable: boolean): void {
    clearTimeout(run.again);
    run.again = undefined;
    if (cancellable === run.cancellable) {
      return;
    }
    if (!cancellable) {
      this.reopen(run, false);
      return;
    }
    run.again = setTimeout(() => {
      run.again = undefined;
      if (this.running.get(String(run.token)) === run) {
        this.reopen(run, true);
      }
    }, CANCEL_AGAIN_MS);
  }

  /** Replaces the run's notification by one with (or without) Cancel, showing the message so far. */
  private reopen(run: Running, cancellable: boolean): void {
    run.finish();
    run.cancellable = cancellable;
    run.reported = 0; // the new notification's bar starts empty
    this.show(run);
  }

  private report(run: Running, params: WorkDoneProgressBegin | WorkDoneProgressReport): void {
    if (run.progress === undefined) {
      return;
    }
    if (typeof params.message === 'string') {
      run.message = params.message;
    }
    if (typeof params.percentage === 'number') {
      const percentage = Math.max(0, Math.min(100, params.percentage));
      const increment = Math.max(0, percentage - run.reported);
      run.reported += increment;
      run.progress.report({ message: params.message, increment });
    } else if (typeof params.message === 'string') {
      run.progress.report({ message: params.message });
    }
  }

  /** Closes the notification of `token`, if it is still open (its run ended without an `end`). */
  close(token: ProgressToken): void {
    const key = String(token);
    const run = this.running.get(key);
    if (run !== undefined) {
      this.running.delete(key);
      run.finish();
    }
  }

  /** Closes every notification, e.g. when the server stopped without ending its progress. */
  clear(): void {
    for (const run of this.running.values()) {
      run.finish();
    }
    this.running.clear();
  }

  dispose(): void {
    this.clear();
  }
}
