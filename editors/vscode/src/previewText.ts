// The text an lspilot edit would make, and the edit without its confirmation annotation. No vscode
// import: tests/editors/test_vscode.py runs this module in plain Node.

/** An LSP position, range and text edit (UTF-16 code units, VS Code's and JavaScript's own). */
export interface LspPosition {
  line: number;
  character: number;
}
export interface LspRange {
  start: LspPosition;
  end: LspPosition;
}
export interface LspTextEdit {
  range: LspRange;
  newText: string;
  annotationId?: string;
}

/** The parts of an LSP `WorkspaceEdit` the preview reads (everything else is passed on as it is). */
export interface LspWorkspaceEdit {
  changes?: Record<string, LspTextEdit[]>;
  documentChanges?: (
    | { textDocument: { uri: string; version: number | null }; edits: LspTextEdit[] }
    | { kind: 'create' | 'rename' | 'delete'; uri?: string; oldUri?: string; newUri?: string; annotationId?: string; options?: unknown }
  )[];
  changeAnnotations?: Record<string, { label: string; needsConfirmation?: boolean; description?: string }>;
}

/** One file of an edit: whether the edit creates it, and its text edits in order. */
export interface FileChange {
  uri: string;
  created: boolean;
  /** The version the edit was made for (null or absent: the file on disk). */
  version?: number | null;
  edits: LspTextEdit[];
}

/** Whether any of the edit's change annotations asks for the user's confirmation (lspilot's `confirmEdits`). */
export function needsConfirmation(edit: LspWorkspaceEdit | null | undefined): boolean {
  const annotations = edit?.changeAnnotations ?? {};
  return Object.values(annotations).some((a) => a?.needsConfirmation === true);
}

/**
 * The same edit without change annotations: what is applied once the user accepted it (VS Code
 * would otherwise open its own Refactor Preview, with lspilot's change unticked).
 */
export function withoutAnnotations<T extends LspWorkspaceEdit>(edit: T): T {
  const strip = (e: LspTextEdit): LspTextEdit => ({ range: e.range, newText: e.newText });
  const copy: T = { ...edit };
  delete copy.changeAnnotations;
  if (edit.changes !== undefined) {
    copy.changes = Object.fromEntries(Object.entries(edit.changes).map(([uri, edits]) => [uri, edits.map(strip)]));
  }
  if (edit.documentChanges !== undefined) {
    copy.documentChanges = edit.documentChanges.map((change) => {
      if ('textDocument' in change) {
        return { ...change, edits: change.edits.map(strip) };
      }
      const rest = { ...change };
      delete rest.annotationId;
      return rest;
    });
  }
  return copy;
}

/**
 * The files an edit changes, in order; undefined when it renames or deletes files (the preview shows
 * text, not file operations: those go to VS Code as they are).
 */
export function fileChanges(edit: LspWorkspaceEdit): FileChange[] | undefined {
  const files = new Map<string, FileChange>();
  const file = (uri: string): FileChange => {
    let change = files.get(uri);
    if (change === undefined) {
      change = { uri, created: false, edits: [] };
      files.set(uri, change);
    }
    return change;
  };
  if (edit.documentChanges !== undefined) {
    for (const change of edit.documentChanges) {
      if ('textDocument' in change) {
        const f = file(change.textDocument.uri);
        f.version = change.textDocument.version;
        f.edits.push(...change.edits);
      } else if (change.kind === 'create' && typeof change.uri === 'string') {
        file(change.uri).created = true;
      } else {
        return undefined;
      }
    }
  } else {
    for (const [uri, edits] of Object.entries(edit.changes ?? {})) {
      file(uri).edits.push(...edits);
    }
  }
  return [...files.values()];
}

/** The offset of an LSP position in `text` (clamped to the line and the text, as editors do). */
export function offsetAt(text: string, position: LspPosition): number {
  let offset = 0;
  for (let line = 0; line < position.line; line++) {
    const next = text.indexOf('\n', offset);
    if (next < 0) {
      return text.length;
    }
    offset = next + 1;
  }
  let end = text.indexOf('\n', offset);
  if (end < 0) {
    end = text.length;
  } else if (end > offset && text[end - 1] === '\r') {
    end--;
  }
  return Math.min(offset + Math.max(0, position.character), end);
}

/** `text` with the edits applied (LSP semantics: ranges refer to the text before any of them). */
export function applyTextEdits(text: string, edits: LspTextEdit[]): string {
  const spans = edits
    .map((e, index) => ({ start: offsetAt(text, e.range.start), end: offsetAt(text, e.range.end), newText: e.newText, index }))
    .sort((a, b) => a.start - b.start || a.end - b.end || a.index - b.index);
  let out = '';
  let at = 0;
  for (const span of spans) {
    out += text.slice(at, Math.max(at, span.start)) + span.newText;
    at = Math.max(at, span.end);
  }
  return out + text.slice(at);
}
