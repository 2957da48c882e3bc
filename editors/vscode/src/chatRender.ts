// A chat answer as HTML, each code block with its buttons. No vscode import: tests/editors/test_vscode.py
// runs this module in plain Node (against the server's own numbering of code blocks).
import type MarkdownIt from 'markdown-it';
import { fenceLanguage, isReplTranscript } from './highlight';

/**
 * The fenced code blocks of an answer as the server numbers them (`lspilot.chatApply`'s `block`):
 * server/lspilot/chat/prompt.py `code_blocks`, the same expression. Python's `^`/`$` under re.M
 * mean "after/before a \n, or at either end" only, hence the lookarounds instead of JS's /m (which
 * would also break lines at \r and \u2028).
 */
export function codeBlocks(answer: string): string[] {
  const fence = /(?<![^\n])[ \t]*(`{3,}|~{3,})[^\n]*\n([\s\S]*?)(?<![^\n])[ \t]*\1[ \t]*(?![^\n])/g;
  return [...answer.matchAll(fence)].map((match) => match[2]);
}

/** What a rendered answer offers on its code blocks. */
export interface BlockButtons {
  /** Apply to selection and Insert at cursor (the server kept the answer: chatApply can take its blocks). */
  apply: boolean;
  /** Copy (the answer has ended). */
  copy: boolean;
}

export interface RenderedAnswer {
  html: string;
  /** The code of each fence as rendered, by its `data-fence` number (what Copy copies). */
  fences: string[];
}

interface FenceMeta {
  lspilotFence?: number;
  /** The server's block number of this fence, or -1 when the server does not see it as one. */
  lspilotBlock?: number;
  /** A REPL transcript (`>>>`): Copy only. */
  lspilotRepl?: boolean;
}

/** The toolbar's icons: inline SVG (the webviews load no icon font or file). */
const ICONS = {
  apply:
    '<svg viewBox="0 0 16 16" aria-hidden="true"><rect x="2.5" y="7.5" width="11" height="6" rx="1"/><path d="M8 1.5v7.5M5.5 6.5 8 9l2.5-2.5"/></svg>',
  insert: '<svg viewBox="0 0 16 16" aria-hidden="true"><path d="M5 2.5h4M5 13.5h4M7 2.5v11M11.5 5.5v5M9 8h5"/></svg>',
  copy: '<svg viewBox="0 0 16 16" aria-hidden="true"><rect x="5.5" y="1.5" width="8" height="9.5" rx="1"/><path d="M10.5 13v.5a1 1 0 0 1-1 1h-6a1 1 0 0 1-1-1V6a1 1 0 0 1 1-1h.5"/></svg>',
};

/** One icon button of a code block's toolbar; `label` is its tooltip and its accessible name. */
function toolButton(act: 'apply' | 'insert' | 'copy', label: string, data: string): string {
  return `<button class="block-action" data-act="${act}" ${data} title="${label}" aria-label="${label}">${ICONS[act]}</button>`;
}

/**
 * Adds the buttons to `md`'s code fences: a fence the render marked (see `renderAnswer`) is wrapped
 * in `<div class="code-block">` with a toolbar. Everything in it is ours; the code stays escaped.
 */
export function withBlockButtons(md: MarkdownIt): MarkdownIt {
  const fence = md.renderer.rules.fence;
  if (fence === undefined) {
    throw new Error('markdown-it has no fence renderer');
  }
  md.renderer.rules.fence = (tokens, index, options, env, self) => {
    const html = fence(tokens, index, options, env, self);
    const meta = tokens[index].meta as FenceMeta | null;
    if (meta?.lspilotFence === undefined) {
      return html;
    }
    const fenceData = `data-fence="${meta.lspilotFence}"`;
    const buttons: string[] = [];
    if (meta.lspilotBlock !== undefined && meta.lspilotBlock >= 0) {
      const data = `data-block="${meta.lspilotBlock}" ${fenceData}`;
      buttons.push(toolButton('apply', 'Apply to selection', data), toolButton('insert', 'Insert at cursor', data));
    }
    buttons.push(toolButton('copy', 'Copy', fenceData));
    const language = fenceLanguage(tokens[index].info);
    const shown = meta.lspilotRepl === true ? 'python REPL' : language;
    const header =
      `<div class="block-header"><span class="block-lang">${md.utils.escapeHtml(shown)}</span>` +
      `<span class="block-tools" role="toolbar" aria-label="Code block">${buttons.join('')}</span></div>`;
    const repl = meta.lspilotRepl === true ? ' data-repl="true"' : '';
    return `<div class="code-block" ${fenceData}${repl}>${header}${html}</div>`;
  };
  return md;
}

/**
 * `text` as HTML (with `md` from `withBlockButtons`). With `buttons.apply`, a fence gets Apply and
 * Insert when the server numbers it as a block too (matched by its code, in order: markdown-it and
 * the server's expression agree on plain fences, and a fence only one of them sees gets no Apply).
 */
export function renderAnswer(md: MarkdownIt, text: string, buttons: BlockButtons): RenderedAnswer {
  const tokens = md.parse(text, {});
  const fences: string[] = [];
  if (buttons.copy || buttons.apply) {
    const blocks = buttons.apply ? codeBlocks(text).map(sameCode) : [];
    let next = 0;
    for (const token of tokens) {
      if (token.type !== 'fence') {
        continue;
      }
      const meta: FenceMeta = { lspilotFence: fences.length, lspilotBlock: -1 };
      fences.push(token.content);
      if (isReplTranscript(fenceLanguage(token.info), token.content)) {
        meta.lspilotRepl = true; // its server block number is still skipped below, so later ones keep theirs
      }
      const code = sameCode(token.content);
      const found = blocks.indexOf(code, next);
      if (found >= 0) {
        meta.lspilotBlock = meta.lspilotRepl === true ? -1 : found;
        next = found + 1;
      }
      token.meta = { ...((token.meta as object | null) ?? {}), ...meta };
    }
  }
  return { html: md.renderer.render(tokens, md.options, {}), fences };
}

/** Code compared without what markdown-it strips: a list item's indentation, trailing blanks. */
function sameCode(code: string): string {
  const lines = code.replace(/\s+$/, '').split('\n').map((line) => line.replace(/\s+$/, ''));
  const indents = lines.filter((line) => line !== '').map((line) => /^[ \t]*/.exec(line)?.[0].length ?? 0);
  const common = indents.length > 0 ? Math.min(...indents) : 0;
  return lines.map((line) => line.slice(common)).join('\n');
}
