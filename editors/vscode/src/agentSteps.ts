// Agent mode's steps as the chat view shows them: the arguments in brief, the file and lines a step
// is about, the proposed text of an edit, and a step's HTML. No vscode import: tests/editors/
// test_vscode.py runs this module in plain Node.
import type { StepStatus } from './protocol';

/** A step (one tool call) of an agent turn, as the view shows it. */
export interface StepView {
  /** Unique in its turn (the view's handle: a model may reuse a call id across requests). */
  key: string;
  id: string;
  name: string;
  /** The arguments' JSON text as the model wrote it. */
  arguments: string;
  /** `stopped`: the turn ended (Stop) while it ran, so the server never said how it ended. */
  status: StepStatus | 'stopped';
  summary?: string;
  /** The server's question about this call (window/showMessageRequest), while asked and after. */
  approval?: Approval;
}

export interface Approval {
  message: string;
  actions: string[];
  /** The title chosen (here or in the notification), or `no answer`; undefined while asked. */
  answered?: string;
}

/** Where a step's link goes: a workspace path (as the model wrote it) and 1-based lines. */
export interface StepTarget {
  path: string;
  startLine?: number;
  endLine?: number;
}

/** The arguments as an object, or undefined when they are not a JSON object. */
export function parseArguments(raw: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(raw === '' ? '{}' : raw);
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);
const int = (value: unknown): number | undefined => (typeof value === 'number' && Number.isInteger(value) && value > 0 ? value : undefined);

/** A shell-like rendering of argv, for reading only (quotes words with spaces or quotes). */
function argvText(argv: unknown): string {
  if (!Array.isArray(argv)) {
    return '';
  }
  return argv.map((a) => (typeof a === 'string' && /^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(String(a)))).join(' ');
}

function clip(text: string, max = 80): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

/** The arguments in brief: `calc.py lines 4-7`, `"def add" in *.py`, `sleep 30`. */
export function briefArguments(name: string, raw: string): string {
  const args = parseArguments(raw);
  if (args === undefined) {
    return clip(raw);
  }
  const path = str(args.path) ?? '';
  switch (name) {
    case 'read_file': {
      const start = int(args.startLine);
      const end = int(args.endLine);
      const lines = start !== undefined || end !== undefined ? ` lines ${start ?? 1}-${end ?? 'end'}` : '';
      return `${path}${lines}`;
    }
    case 'list_files':
      return str(args.glob) ?? 'all files';
    case 'search':
      return `${JSON.stringify(str(args.pattern) ?? '')}${str(args.glob) !== undefined ? ` in ${str(args.glob)}` : ''}`;
    case 'edit_file': {
      const old = str(args.old) ?? '';
      const replacement = str(args.new) ?? '';
      return `${path} (-${old.split('\n').length} +${replacement.split('\n').length} lines)`;
    }
    case 'create_file':
      return `${path} (${(str(args.content) ?? '').split('\n').length} lines)`;
    case 'run_tests':
      return path || 'the project';
    case 'run_command':
      return clip(argvText(args.argv), 120);
    default:
      return clip(raw);
  }
}

/**
 * The file and lines a step is about, for read_file, edit_file and create_file: a read's range; an
 * edit's lines from its summary once done (`calc.py:4 (-3 +1)`: the new lines 4-4), else none (the
 * extension finds `old` in the document); a created file's first line.
 */
export function stepTarget(step: Pick<StepView, 'name' | 'arguments' | 'summary' | 'status'>): StepTarget | undefined {
  const args = parseArguments(step.arguments);
  const path = str(args?.path);
  if (args === undefined || path === undefined || path === '') {
    return undefined;
  }
  if (step.name === 'read_file') {
    const start = int(args.startLine);
    const end = int(args.endLine);
    return { path, startLine: start ?? (end !== undefined ? 1 : undefined), endLine: end ?? start };
  }
  if (step.name === 'edit_file') {
    const done = step.status === 'done' ? /:(\d+) \(-\d+ \+(\d+)\)$/.exec(step.summary ?? '') : null;
    if (done !== null) {
      const first = Number(done[1]);
      return { path, startLine: first, endLine: first + Math.max(1, Number(done[2])) - 1 };
    }
    return { path };
  }
  if (step.name === 'create_file') {
    return { path };
  }
  return undefined;
}

/** `calc.py:4-7`, `calc.py:4`, `calc.py`. */
export function targetLabel(target: StepTarget): string {
  if (target.startLine === undefined) {
    return target.path;
  }
  return target.endLine !== undefined && target.endLine !== target.startLine
    ? `${target.path}:${target.startLine}-${target.endLine}`
    : `${target.path}:${target.startLine}`;
}

/**
 * The text `current` becomes when edit_file replaces `old` by `replacement`, as the server will do
 * it (the one occurrence), with the 1-based lines `old` spans; or why it cannot be shown.
 */
export function proposedEdit(
  current: string,
  old: string,
  replacement: string,
): { text: string; startLine: number; endLine: number } | { error: string } {
  if (old === '') {
    return { error: "the edit's old text is empty" };
  }
  const at = current.indexOf(old);
  if (at < 0) {
    return { error: "the edit's old text is not in the file (the model may have misquoted it; the server will say so)" };
  }
  if (current.indexOf(old, at + 1) >= 0) {
    return { error: "the edit's old text occurs more than once in the file (the server will refuse it)" };
  }
  const startLine = current.slice(0, at).split('\n').length;
  return {
    text: current.slice(0, at) + replacement + current.slice(at + old.length),
    startLine,
    endLine: startLine + old.split('\n').length - 1,
  };
}

const ICONS: Record<StepView['status'], string> = { running: '…', done: '✓', failed: '✗', refused: '⊘', stopped: '■' };
const WORDS: Record<StepView['status'], string> = {
  running: 'running',
  done: 'done',
  failed: 'failed',
  refused: 'refused',
  stopped: 'stopped',
};

/** Whether the view can show an edit's proposed text as a diff. */
export function hasDiff(name: string): boolean {
  return name === 'edit_file' || name === 'create_file';
}

/**
 * One step as HTML (every piece of text escaped with `escape`): icon, tool, arguments in brief,
 * status, summary, the link to its file and lines, and its question with Allow / Allow for this
 * conversation / Deny (and Show diff for edits) while asked, or the answer once given.
 */
export function renderStep(step: StepView, escape: (text: string) => string): string {
  const target = stepTarget(step);
  const waiting = step.status === 'running' && step.approval !== undefined && step.approval.answered === undefined;
  const parts = [
    `<span class="step-icon" aria-hidden="true">${waiting ? '?' : ICONS[step.status]}</span>`,
    `<span class="step-name">${escape(step.name)}</span>`,
    `<span class="step-args">${escape(briefArguments(step.name, step.arguments))}</span>`,
    `<span class="step-status">${waiting ? 'waiting for your answer' : WORDS[step.status]}</span>`,
  ];
  // A refused call's summary is what the model is told; the answer below says it for the user.
  const told = step.status === 'refused' && step.approval?.answered !== undefined;
  if (step.summary !== undefined && step.summary !== '' && !told) {
    parts.push(`<span class="step-summary">${escape(step.summary)}</span>`);
  }
  if (target !== undefined) {
    parts.push(
      `<a href="#" class="step-link" data-step-act="open" title="Open ${escape(targetLabel(target))}">${escape(targetLabel(target))}</a>`,
    );
  }
  let approval = '';
  const asked = step.approval;
  if (asked !== undefined) {
    // while asked, or refused (the file is as it was): once applied, `old` is no longer there
    const diffable = hasDiff(step.name) && (asked.answered === undefined || step.status === 'refused');
    const diff = diffable ? '<button class="step-action secondary" data-step-act="diff">Show diff</button>' : '';
    if (asked.answered === undefined) {
      const buttons = asked.actions
        .map((title) => {
          const kind = title === 'Deny' ? ' secondary' : '';
          return `<button class="step-action${kind}" data-step-act="answer" data-choice="${escape(title)}">${escape(title)}</button>`;
        })
        .join('');
      approval = `<div class="approval" data-pending="true"><pre class="question">${escape(asked.message)}</pre><div class="approval-actions">${buttons}${diff}</div></div>`;
    } else {
      approval = `<div class="approval" data-pending="false"><span class="approval-answer">${escape(answerWords(asked.answered))}</span>${diff}</div>`;
    }
  }
  return `<div class="step" data-step="${escape(step.key)}" data-name="${escape(step.name)}" data-status="${step.status}"><div class="step-line">${parts.join(' ')}</div>${approval}</div>`;
}

function answerWords(answer: string): string {
  switch (answer) {
    case 'Allow':
      return 'You allowed it.';
    case 'Allow for this conversation':
      return 'You allowed it for this conversation.';
    case 'Deny':
      return 'You denied it.';
    case 'no answer':
      return 'Not answered (counts as Deny).';
    default:
      return `You answered ${answer}.`;
  }
}
