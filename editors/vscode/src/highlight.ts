// Syntax highlighting of the code blocks in lspilot's webviews, done here in the extension host
// before the HTML is posted: the webviews load nothing (their CSP stays `default-src 'none'`) and
// run no highlighter of their own. highlight.js's core with a few languages (the ones lspilot
// activates on, and what answers about them show: shell, JSON, YAML, diffs, a Python REPL); the
// .vsix ships only these files of the package (.vscodeignore). No vscode import:
// tests/editors/test_vscode.py runs this module in plain Node.
import hljs from 'highlight.js/lib/core';
import bash from 'highlight.js/lib/languages/bash';
import c from 'highlight.js/lib/languages/c';
import cpp from 'highlight.js/lib/languages/cpp';
import csharp from 'highlight.js/lib/languages/csharp';
import css from 'highlight.js/lib/languages/css';
import diff from 'highlight.js/lib/languages/diff';
import go from 'highlight.js/lib/languages/go';
import ini from 'highlight.js/lib/languages/ini';
import java from 'highlight.js/lib/languages/java';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import lua from 'highlight.js/lib/languages/lua';
import markdown from 'highlight.js/lib/languages/markdown';
import php from 'highlight.js/lib/languages/php';
import python from 'highlight.js/lib/languages/python';
import pythonRepl from 'highlight.js/lib/languages/python-repl';
import ruby from 'highlight.js/lib/languages/ruby';
import rust from 'highlight.js/lib/languages/rust';
import shell from 'highlight.js/lib/languages/shell';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';

const LANGUAGES = {
  bash,
  c,
  cpp,
  csharp,
  css,
  diff,
  go,
  ini,
  java,
  javascript,
  json,
  lua,
  markdown,
  php,
  python,
  'python-repl': pythonRepl,
  ruby,
  rust,
  shell,
  sql,
  typescript,
  xml,
  yaml,
};
for (const [name, language] of Object.entries(LANGUAGES)) {
  hljs.registerLanguage(name, language);
}
// VS Code's language ids where highlight.js names them otherwise
hljs.registerAliases(['shellscript', 'zsh'], { languageName: 'bash' });
hljs.registerAliases(['javascriptreact'], { languageName: 'javascript' });
hljs.registerAliases(['typescriptreact'], { languageName: 'typescript' });

/**
 * Whether a code block is a REPL transcript (`>>> x = 1`, `... `, output lines) rather than code to
 * put into a file: its language is `pycon` / `python-repl`, or its first non-blank line is a `>>>`
 * prompt. Such a block is offered Copy only: applied or inserted, its prompts would land in the file.
 */
export function isReplTranscript(language: string, code: string): boolean {
  const lang = language.trim().toLowerCase();
  if (lang === 'pycon' || lang === 'python-repl') {
    return true;
  }
  const first = code.split('\n').find((line) => line.trim() !== '');
  return first !== undefined && /^\s*>>>(?: |$)/.test(first);
}

/** The language a fence's info string names (its first word), lower-cased; '' when none. */
export function fenceLanguage(info: string): string {
  return (info.trim().split(/\s+/)[0] ?? '').toLowerCase();
}

/**
 * `code` as highlighted HTML (`<span class="hljs-…">`, the code itself escaped), or undefined when
 * the language is not one we highlight (the caller escapes it as before). An untagged REPL
 * transcript is highlighted as one.
 */
export function highlightCode(code: string, language: string): string | undefined {
  let lang = fenceLanguage(language);
  if (lang === '' && isReplTranscript('', code)) {
    lang = 'python-repl';
  }
  if (lang === '' || hljs.getLanguage(lang) === undefined) {
    return undefined;
  }
  try {
    return hljs.highlight(code, { language: lang, ignoreIllegals: true }).value;
  } catch {
    return undefined; // a grammar that threw: plain text rather than no answer
  }
}

/**
 * highlight.js's classes in VS Code's theme colours, so a block looks native in light, dark and
 * high-contrast themes (webviews get the theme's colours as `--vscode-*` variables; the editor's
 * own token colours are not among them, so these are the nearest themed ones: the debugger's
 * value colours and the symbol icons' colours).
 */
export const HIGHLIGHT_STYLE = `
  .hljs-keyword, .hljs-selector-tag, .hljs-literal, .hljs-doctag, .hljs-section, .hljs-name { color: var(--vscode-debugTokenExpression-boolean, var(--vscode-textLink-foreground)); }
  .hljs-string, .hljs-regexp, .hljs-addition, .hljs-attribute, .hljs-template-tag, .hljs-template-variable, .hljs-char { color: var(--vscode-debugTokenExpression-string, var(--vscode-foreground)); }
  .hljs-number, .hljs-symbol, .hljs-bullet, .hljs-link, .hljs-selector-id, .hljs-selector-class { color: var(--vscode-debugTokenExpression-number, var(--vscode-foreground)); }
  .hljs-comment, .hljs-quote { color: var(--vscode-descriptionForeground); font-style: italic; }
  .hljs-deletion { color: var(--vscode-debugTokenExpression-error, var(--vscode-errorForeground)); }
  .hljs-title.function_, .hljs-title.function_.invoke__ { color: var(--vscode-symbolIcon-functionForeground, var(--vscode-foreground)); }
  .hljs-title.class_, .hljs-title.class_.inherited__, .hljs-type { color: var(--vscode-symbolIcon-classForeground, var(--vscode-foreground)); }
  .hljs-built_in, .hljs-meta, .hljs-meta .hljs-keyword { color: var(--vscode-debugTokenExpression-name, var(--vscode-foreground)); }
  .hljs-meta.prompt_ { color: var(--vscode-descriptionForeground); user-select: none; }
  .hljs-variable, .hljs-params, .hljs-attr, .hljs-property { color: var(--vscode-symbolIcon-variableForeground, var(--vscode-foreground)); }
  .hljs-emphasis { font-style: italic; }
  .hljs-strong { font-weight: bold; }`;
