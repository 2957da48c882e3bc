import * as vscode from 'vscode';
import {
  ProgressToken,
  WorkDoneProgressBegin,
  WorkDoneProgressEnd,
  WorkDoneProgressReport,
} from 'vscode-languageclient/node';

type Params = WorkDoneProgressBegin | WorkDoneProgressReport | WorkDoneProgressEnd;

interface Running {
  progress?: vscode.Progress<{ message?: string; increment?: number }>;
  finish: () => void;
  reported: number;
  pending: WorkDoneProgressReport[];
}

/**
 * Shows the server's work-done progress as a VS Code progress notification with a Cancel button.
 *
 * vscode-languageclient renders server progress in the status bar, where it cannot be cancelled;
 * lspilot's actions are long and cancellable, so they get a notification instead. Cancel sends
 * `window/workDoneProgress/cancel` for the token, which the server turns into a stop.
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
        run.finish();
        return false; // let the client clean up its own bookkeeping for the token
      }
    }
  }

  private begin(key: string, token: ProgressToken, params: WorkDoneProgressBegin): void {
    if (this.running.has(key)) {
      return; // one notification a token, however often its begin is handed over
    }
    let finish: () => void = () => undefined;
    const done = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const run: Running = { finish: () => finish(), reported: 0, pending: [] };
    this.running.set(key, run);
    const title = params.title.toLowerCase().startsWith('lspilot') ? params.title : `lspilot: ${params.title}`;
    void vscode.window.withProgress(
      { location: vscode.ProgressLocation.Notification, title, cancellable: params.cancellable === true },
      (progress, cancellation) => {
        run.progress = progress;
        const sub = cancellation.onCancellationRequested(() => {
          progress.report({ message: 'cancelling…' });
          this.cancel(token);
        });
        this.report(run, params);
        for (const pending of run.pending.splice(0)) {
          this.report(run, pending);
        }
        return done.finally(() => {
          sub.dispose();
        });
      },
    );
  }

  private report(run: Running, params: WorkDoneProgressBegin | WorkDoneProgressReport): void {
    if (run.progress === undefined) {
      return;
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
